"""The gRPC frontend: ``cadenza.api.v1.WorkflowService`` over grpcio's asyncio server.

Methods are registered as generic handlers taking and returning raw bytes: each request is an Avro
single-object message (see ``cadenza.schemas.api``), decoded here, handed to ``Handlers`` and its
response encoded back. Errors travel as gRPC status codes:

* undecodable bytes, a message of the wrong schema or a record that cannot become a call:
  INVALID_ARGUMENT, with the decoder's explanation, and the server keeps serving;
* a request over ``MAX_REQUEST_BYTES``: RESOURCE_EXHAUSTED, refused by grpc before any decoding;
* the engine's ``ServiceError``: its ``code``; its class name and details go in trailing metadata
  so the client can rebuild the precise SDK exception (the run id of an already-started workflow,
  the namespace that was not found); a refusal by an overload limit (``cadenza.engine.ratelimit``)
  also carries ``retry-after-ms``, the wait until a retry can be admitted;
* with authorization configured (``auth``, ``cadenza.engine.auth``): a call without a verified
  credential is UNAUTHENTICATED, one whose caller lacks the role it needs PERMISSION_DENIED, both
  before the frontend sees it. Without it no check is made.

The standard ``grpc.health.v1.Health`` service answers SERVING while the server runs. A graceful
stop (``begin_stop``, then ``wait_idle`` and ``stop``) turns it to NOT_SERVING at once and refuses new
calls with UNAVAILABLE while the calls in flight finish (``cadenza.engine.rpc.admission``).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cadenza.engine import logcontext, tracing
from cadenza.engine.auth.gate import AuthGate
from cadenza.engine.errors import ServiceError, UnavailableError
from cadenza.engine.forwarding import FORWARDED, FORWARDED_HEADER
from cadenza.engine.persistence.errors import StoreUnavailableError
from cadenza.engine.rpc.admission import InFlightCalls
from cadenza.engine.rpc.handlers import ClusterInfo, Handler, Handlers
from cadenza.metrics.frontend import rpc_meter
from cadenza.schemas import api
from cadenza.schemas.registry import SchemaError

log = logging.getLogger("cadenza.rpc")

ERROR_TYPE_KEY = "cadenza-error-type"
ERROR_DETAILS_KEY = "cadenza-error-details-bin"
RETRY_AFTER_KEY = "retry-after-ms"
"""On RESOURCE_EXHAUSTED from an overload limit: milliseconds until trying again can succeed."""

# Server codes that are not gRPC codes travel as the nearest one (as the anchors send QueryFailed).
_CODE_ALIASES = {"QUERY_FAILED": "INVALID_ARGUMENT"}


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """PEM material for TLS. With ``client_ca`` set the server requires mutual TLS: a client must
    present a certificate signed by that CA or the handshake fails."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None


def _status(code: str) -> grpc.StatusCode:
    code = _CODE_ALIASES.get(code, code)
    return getattr(grpc.StatusCode, code, grpc.StatusCode.UNKNOWN)


def _wrap(
    method: str, handler: Handler, metrics: Any = None, gate: AuthGate | None = None
) -> grpc.RpcMethodHandler:
    """``metrics`` (``cadenza.metrics.ServerMetrics``): each call's latency and outcome
    (``service_latency``, ``service_errors_*``; see ``cadenza.metrics.frontend``). ``gate``:
    authorization, checked on the decoded request (an open server has none)."""
    request_name, response_name = f"{method}Request", f"{method}Response"
    meter = rpc_meter(metrics, method)
    # Log context (JSON logs) and span attributes: looked up once here, nothing per call when off.
    describe = _describe_request if logcontext.enabled() or tracing.enabled() else None

    async def call(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        started = perf_counter()
        if any(key == FORWARDED_HEADER for key, _ in context.invocation_metadata() or ()):
            FORWARDED.set(True)  # this call's own task context: forwarded once, never again
        try:
            record = api.decode(request_name, request)
        except SchemaError as e:
            if meter is not None:
                meter.rejected(e, started)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: {e}")
        if describe is not None:
            describe(record)
        try:
            if gate is not None:
                await gate.check(method, record, context)
            try:
                response = await handler(record)
            except StoreUnavailableError as e:
                # The store could not be reached (a write's outcome is then unknown): clients
                # retry UNAVAILABLE, where an unexpected error would reach them as UNKNOWN.
                raise UnavailableError(str(e)) from e
        except ServiceError as e:
            if meter is not None:
                meter.failed(record, e, started)
            details = json.dumps(e.details, default=str).encode()
            trailing: tuple[tuple[str, str | bytes], ...] = (
                (ERROR_TYPE_KEY, type(e).__name__),
                (ERROR_DETAILS_KEY, details),
            )
            if "retry_after_ms" in e.details:  # an overload refusal: when to try again
                trailing += ((RETRY_AFTER_KEY, str(e.details["retry_after_ms"])),)
            context.set_trailing_metadata(trailing)
            await context.abort(_status(e.code), e.message)
        except (SchemaError, ValueError, KeyError, TypeError) as e:
            # A record that decoded but cannot become a call (an unknown command type, a missing
            # failure): the caller's fault, so say what is wrong rather than INTERNAL.
            if meter is not None:
                meter.rejected(e, started)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: {type(e).__name__}: {e}")
        if meter is not None:
            meter.done(record, started)
        try:
            return api.encode(response_name, response)
        except SchemaError as e:
            log.exception("cannot encode the response of %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, f"{method}: cannot encode the response: {e}")
        raise AssertionError("unreachable")  # abort raises

    return grpc.unary_unary_rpc_method_handler(tracing.traced_rpc(method, call))


def _describe_request(record: dict[str, Any]) -> None:
    logcontext.bind_request(record)
    tracing.annotate(dict(logcontext.current()))


def server_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", api.MAX_REQUEST_BYTES),
        ("grpc.max_send_message_length", api.MAX_RESPONSE_BYTES),
        # Two servers on one port would split the traffic between them without an error.
        ("grpc.so_reuseport", 0),
        # Workers hold long polls open for a minute; let their keepalive pings through.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ]


class RpcServer:
    """Serves one ``Frontend`` on ``host:port`` (port 0 picks a free one; see ``port``)."""

    def __init__(
        self,
        frontend: Any,
        *,
        cluster: ClusterInfo | None = None,
        metrics: Any = None,
        auth: AuthGate | None = None,
    ) -> None:
        self.metrics = metrics
        self.auth = auth
        """Authorization (``cadenza.engine.auth.open_gate``); None serves every caller."""
        self.handlers = Handlers(frontend, cluster or ClusterInfo())
        table = self.handlers.table()
        missing = set(api.METHODS) ^ set(table)
        if missing:
            raise RuntimeError(f"API schemas and handlers disagree on methods: {sorted(missing)}")
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self.port = 0
        self.calls = InFlightCalls()
        """The calls in flight, and whether new ones are still admitted (``begin_stop``)."""

    async def start(self, host: str = "127.0.0.1", port: int = 7233, *, tls: ServerTLS | None = None) -> int:
        if self.auth is not None and self.auth.tls_subject and (tls is None or tls.client_ca is None):
            raise ValueError(
                "tlsSubjectPermissions maps client certificates, which needs mutual TLS "
                "(a client CA: --tls-client-ca)"
            )
        server = grpc.aio.server(options=server_options())
        # Only what is configured is passed: tests stand in for _wrap with (method, handler).
        wrap: Callable[[str, Handler], grpc.RpcMethodHandler] = _wrap
        if self.metrics is not None or self.auth is not None:
            wrap = functools.partial(_wrap, metrics=self.metrics, gate=self.auth)
        generic = grpc.method_handlers_generic_handler(
            api.SERVICE, {m: wrap(m, self.calls.guard(m, h)) for m, h in self.handlers.table().items()}
        )
        server.add_generic_rpc_handlers((generic,))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            creds = grpc.ssl_server_credentials(
                [(tls.private_key, tls.cert_chain)],
                root_certificates=tls.client_ca,
                require_client_auth=tls.client_ca is not None,
            )
            bound = server.add_secure_port(address, creds)
        if not bound:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        for service in ("", api.SERVICE):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        self.port = bound
        log.info(
            "serving %s on %s:%d%s%s",
            api.SERVICE,
            host,
            bound,
            " (TLS)" if tls else "",
            " (authorization on)" if self.auth is not None else "",
        )
        return bound

    async def begin_stop(self) -> None:
        """The first step of a graceful stop: the health service answers NOT_SERVING from now on
        (load balancers and clients move away) and new calls are refused with UNAVAILABLE, which
        clients retry elsewhere; the listener stays open so that both answers reach them. Calls in
        flight go on (``wait_idle``)."""
        self.calls.close()
        await self._health.enter_graceful_shutdown()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Waits up to ``timeout_s`` for the calls in flight to finish, then refuses every call
        (task answers too) and waits for those admitted meanwhile; False if some are left."""
        deadline = time.monotonic() + timeout_s
        idle = await self.calls.wait_idle(timeout_s)
        self.calls.seal()
        if idle:  # a task answer may have come in as the last call ended
            idle = await self.calls.wait_idle(deadline - time.monotonic())
        return idle

    async def stop(self, grace: float = 2.0) -> None:
        """Stops accepting calls; calls in flight (long polls included) get ``grace`` seconds, then
        are cancelled."""
        if self._server is None:
            return
        await self.begin_stop()
        await self._server.stop(grace)
        self._server = None

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
