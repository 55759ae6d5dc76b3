"""What every client command shares: where the server is, how to print, how to fail.

Connection options can be given globally (``cadenza --address H:P --ns NAME workflow list``, as with
tctl) or on the command itself (``cadenza wf list --address H:P``); the command's own value wins,
then the global one, then the environment (``CADENZA_ADDRESS``, ``CADENZA_NAMESPACE``), then the
defaults. The bearer token for a server with authorization on is a root option only
(``cadenza --auth-token T ...``, or ``CADENZA_AUTH_TOKEN``), so it is typed once. Output is a table
for people or JSON for scripts (``-o json``); errors go to stderr with exit status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from cadenza.sdk.client import Client, TLSConfig
from cadenza.sdk.exceptions import CadenzaError, RPCError

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Settings:
    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    output: str = "table"
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None
    rpc_timeout: float = 10.0
    auth_token: str | None = None
    """Sent as ``authorization: Bearer <token>`` (root ``--auth-token`` or CADENZA_AUTH_TOKEN)."""

    def tls(self) -> TLSConfig | None:
        if not (self.tls_ca or self.tls_cert or self.tls_key or self.tls_server_name):
            return None
        return TLSConfig(
            server_root_ca_cert=_read(self.tls_ca),
            client_cert=_read(self.tls_cert),
            client_private_key=_read(self.tls_key),
            domain=self.tls_server_name,
        )


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as e:
        raise click.UsageError(f"cannot read {path}: {e.strerror or e}") from None


_CONNECTION_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("--address", "--ad"),
        {
            "help": f"Server host:port, a comma-separated list, or dns:///name:port "
            f"[env CADENZA_ADDRESS; default {DEFAULT_ADDRESS}]"
        },
    ),
    (("--namespace", "--ns"), {"help": f"Namespace [env CADENZA_NAMESPACE; default {DEFAULT_NAMESPACE}]"}),
    (("-o", "--output"), {"type": click.Choice(["table", "json"]), "help": "Output format [default table]"}),
    (("--tls-ca",), {"help": "PEM file of the CA that signed the server's certificate (enables TLS)"}),
    (("--tls-cert",), {"help": "PEM client certificate, for servers that require mutual TLS"}),
    (("--tls-key",), {"help": "PEM private key of --tls-cert"}),
    (("--tls-server-name",), {"help": "Name to verify the server certificate against"}),
    (("--rpc-timeout",), {"type": float, "help": "Deadline of one call, in seconds [default 10]"}),
]
_FIELDS = (
    "address",
    "namespace",
    "output",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_server_name",
    "rpc_timeout",
    # Only a root option (``cadenza --auth-token T ...``) and the environment set it.
    "auth_token",
)


def connection_options(fn: F) -> F:
    """Adds the connection and output options to a command (or to the root group)."""
    for decls, kwargs in reversed(_CONNECTION_OPTIONS):
        fn = click.option(*decls, default=None, **kwargs)(fn)
    return fn


def connection_options_without_output(fn: F) -> F:
    """For a command that defines its own ``-o`` (``workflow show`` also takes a file name)."""
    for decls, kwargs in reversed(_CONNECTION_OPTIONS):
        if decls[0] != "-o":
            fn = click.option(*decls, default=None, **kwargs)(fn)
    return fn


def root_settings(**given: Any) -> Settings:
    env = {
        "address": os.environ.get("CADENZA_ADDRESS"),
        "namespace": os.environ.get("CADENZA_NAMESPACE"),
        "auth_token": os.environ.get("CADENZA_AUTH_TOKEN") or None,
    }
    s = Settings()
    for name in _FIELDS:
        value = given.get(name)
        if value is None:
            value = env.get(name)
        if value is not None:
            setattr(s, name, value)
    return s


def settings(ctx: click.Context, **given: Any) -> Settings:
    """The command's own options over the global ones (``ctx.obj``) over env and defaults."""
    base = ctx.find_root().obj if isinstance(ctx.find_root().obj, Settings) else root_settings()
    s = Settings(**{name: getattr(base, name) for name in _FIELDS})
    for name in _FIELDS:
        if given.get(name) is not None:
            setattr(s, name, given[name])
    return s


def pop_settings(ctx: click.Context, kwargs: dict[str, Any]) -> Settings:
    return settings(ctx, **{name: kwargs.pop(name, None) for name in _FIELDS})


@contextlib.asynccontextmanager
async def connect(s: Settings, *, retries: int = 2) -> AsyncIterator[Client]:
    targets: str | list[str] = s.address
    if "," in s.address:
        targets = [t.strip() for t in s.address.split(",") if t.strip()]
    client = await Client.connect(
        targets,
        namespace=s.namespace,
        tls=s.tls(),
        rpc_timeout=s.rpc_timeout,
        retries=retries,
        api_key=s.auth_token,
    )
    try:
        yield client
    finally:
        close = getattr(client.service, "close", None)
        if close is not None:
            await close()


T = TypeVar("T")


def run(s: Settings, coro: Coroutine[Any, Any, T]) -> T:
    """Runs a command's coroutine; SDK errors become one line on stderr and exit status 1."""
    try:
        return asyncio.run(coro)
    except RPCError as e:
        if e.status == "UNAVAILABLE":
            fail(f"cannot reach the Cadenza server at {s.address}: {e.message}")
        fail(f"{e.status}: {e.message}")
    except CadenzaError as e:
        fail(str(e))
    except (OSError, ValueError) as e:
        fail(str(e))


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


class AliasedGroup(click.Group):
    """A group whose commands also answer to short names (``n re`` for ``namespace register``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases: dict[str, str] = {}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))


# -- output -------------------------------------------------------------------------------------------


def fmt_time(us: int) -> str:
    if not us:
        return "-"
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    return str(value)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        # Text, not str: cell values are data, and "[true]" must not be read as console markup.
        table.add_row(*(Text("-" if v is None or v == "" else str(v)) for v in row))
    _console().print(table)


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    print_table(("FIELD", "VALUE"), [(k, v) for k, v in pairs])


def _console() -> Any:
    from rich.console import Console

    out = sys.stdout
    # Not a terminal (a pipe, a test): no colours and no wrapping at 80 columns.
    return Console(file=out, width=None if out.isatty() else 200, soft_wrap=not out.isatty())


def parse_json_args(values: Sequence[str], what: str = "--input") -> list[Any]:
    """Each value parsed as JSON; ``click.BadParameter`` naming the value otherwise. Numbers must be
    finite (``NaN``, ``Infinity`` and ``1e999`` are not JSON values a workflow could get back)."""
    out = []
    for i, v in enumerate(values):
        try:
            out.append(json.loads(v, parse_float=_finite_float, parse_constant=_no_constant))
        except ValueError as e:
            raise click.BadParameter(
                f"value {i + 1} is not JSON ({e}): {v[:200]!r}", param_hint=what
            ) from None
        except RecursionError:
            raise click.BadParameter(
                f"value {i + 1} nests arrays or objects too deeply: {v[:200]!r}", param_hint=what
            ) from None
    return out


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
