"""Serving the web UI: the JSON API, the static assets, and the one page every UI path opens.

The UI runs inside the server's asyncio loop (``aiohttp.web`` on an ``AppRunner``), so it costs no
thread or process; the pages are plain HTML, CSS and JavaScript shipped in ``static/`` (no CDN,
no build step). Paths that are not the API or an asset (``/namespaces/default/workflows/...``)
answer with ``index.html`` and the page's script routes them, so every view has a URL to share.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from cadenza.ui.api import UIApi, UIService, errors_as_json

log = logging.getLogger("cadenza.ui")

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_UI_PORT = 8233
"""As Temporal's dev server: the gRPC port plus 1000."""


@dataclass(frozen=True)
class UISettings:
    """Where the web UI listens."""

    ip: str = "127.0.0.1"
    port: int = DEFAULT_UI_PORT
    """0: any free port (the one taken is ``UIServer.port``)."""
    required: bool = True
    """False: a port already in use is logged and the server runs without its UI (the dev server's
    default port); True: it is an error (a port the operator asked for)."""


@web.middleware
async def server_timing(request: web.Request, handler: Any) -> web.StreamResponse:
    """``Server-Timing: app;dur=<ms>`` on every API answer: the server's time, which the list
    page's budget is stated in, without the browser's or the network's."""
    started = time.perf_counter()
    response: web.StreamResponse = await handler(request)
    if request.path.startswith("/api/"):
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    # Everything the pages load comes from this server; nothing may be framed or sniffed.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _api_not_found(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": {"status": "NOT_FOUND", "message": f"no API at {request.method} {request.path}"}},
        status=404,
    )


def create_app(service: UIService) -> web.Application:
    """The UI as an ``aiohttp`` application over ``service`` (a ``WorkflowService`` with the
    visibility and admin calls, as ``UIService`` lists them)."""
    app = web.Application(middlewares=[server_timing, security_headers, errors_as_json])
    app.add_routes(UIApi(service).routes())
    app.add_routes([web.static("/static", STATIC_DIR, append_version=False)])
    app.router.add_route("*", "/api/{tail:.*}", _api_not_found)
    app.router.add_get("/{tail:.*}", _index)
    return app


class UIServer:
    """The UI's HTTP listener, started and stopped with the server that owns it."""

    def __init__(self, service: UIService, settings: UISettings) -> None:
        self.settings = settings
        self._app = create_app(service)
        self._runner: web.AppRunner | None = None
        self.port = 0
        """The port served on; 0 when not serving (not started, or the port was taken and the UI
        was not required)."""

    async def start(self) -> int:
        s = self.settings
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, s.ip, s.port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            if s.required:
                raise OSError(e.errno, f"cannot serve the web UI on {s.ip}:{s.port}: {e.strerror}") from None
            log.warning("web UI not started: %s:%d is in use (%s); pass --ui-port", s.ip, s.port, e.strerror)
            return 0
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    @property
    def url(self) -> str:
        return f"http://{self.settings.ip}:{self.port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.port = 0
