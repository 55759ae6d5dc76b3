"""Per-call options of the client's calls, with temporalio's names: ``rpc_metadata`` (extra gRPC
metadata) and ``rpc_timeout`` (a deadline for each RPC the call makes).

They travel to the transport in context variables set around the call rather than as arguments of
every ``WorkflowService`` method, so the service protocol (and the in-process engine behind it)
stays as it is and a call that sets neither costs one context-variable read per RPC. Over gRPC the
metadata goes out with each RPC and the timeout becomes its deadline; in process there is no wire
for the metadata (it is checked and dropped) and the timeout bounds the await. Either way a call
that runs out of time raises ``RPCError`` with status ``DEADLINE_EXCEEDED``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

from cadenza.sdk.interceptor import OUTGOING_METADATA

__all__ = ["RPC_TIMEOUT", "RpcMetadata", "deadline_exceeded", "rpc_options"]

RpcMetadata = Mapping[str, str | bytes]
"""gRPC metadata: lower-case keys; values are text, or bytes for keys ending in ``-bin``."""

RPC_TIMEOUT: ContextVar[float | None] = ContextVar("cadenza_rpc_timeout", default=None)
"""Seconds each RPC made in this context may take (None: the transport's own deadline)."""

_KEY = re.compile(r"^[0-9a-z_.\-]+$")
_RESERVED_PREFIXES = ("grpc-", "cadenza-")
"""Keys gRPC itself uses, and those the server's own protocol uses (forwarding, errors)."""


def check_metadata(rpc_metadata: RpcMetadata) -> tuple[tuple[str, str | bytes], ...]:
    out: list[tuple[str, str | bytes]] = []
    for key, value in rpc_metadata.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(
                f"rpc_metadata key {key!r} is not a gRPC metadata key (lower-case letters, digits, "
                "'-', '_' and '.')"
            )
        if key.startswith(_RESERVED_PREFIXES):
            raise ValueError(
                f"rpc_metadata key {key!r} is reserved (prefixes {', '.join(_RESERVED_PREFIXES)})"
            )
        if key.endswith("-bin"):
            if not isinstance(value, bytes):
                raise ValueError(f"rpc_metadata key {key!r} ends in -bin: its value must be bytes")
        elif not isinstance(value, str) or not value.isascii() or not value.isprintable():
            raise ValueError(
                f"rpc_metadata value of {key!r} must be printable ASCII text (bytes need a key "
                f"ending in -bin), got {value!r}"
            )
        out.append((key, value))
    return tuple(out)


def _check_timeout(rpc_timeout: timedelta) -> float:
    if not isinstance(rpc_timeout, timedelta):
        raise TypeError(f"rpc_timeout must be a timedelta, got {type(rpc_timeout).__name__}")
    seconds = rpc_timeout.total_seconds()
    if seconds <= 0:
        raise ValueError(f"rpc_timeout must be positive, got {rpc_timeout}")
    return seconds


@contextmanager
def rpc_options(
    rpc_metadata: RpcMetadata | None = None, rpc_timeout: timedelta | None = None
) -> Iterator[None]:
    """The RPCs made inside carry ``rpc_metadata`` and get ``rpc_timeout`` as their deadline.
    Bad options raise before anything is sent."""
    if not rpc_metadata and rpc_timeout is None:
        yield
        return
    metadata = check_metadata(rpc_metadata) if rpc_metadata else ()
    seconds = _check_timeout(rpc_timeout) if rpc_timeout is not None else None
    metadata_token = OUTGOING_METADATA.set((*OUTGOING_METADATA.get(), *metadata)) if metadata else None
    timeout_token = RPC_TIMEOUT.set(seconds) if seconds is not None else None
    try:
        yield
    finally:
        if timeout_token is not None:
            RPC_TIMEOUT.reset(timeout_token)
        if metadata_token is not None:
            OUTGOING_METADATA.reset(metadata_token)


def deadline_exceeded(method: str, seconds: float) -> Exception:
    """The error of a call that ran out of its ``rpc_timeout`` (temporalio's RPCError with status
    DEADLINE_EXCEEDED)."""
    from cadenza.sdk.exceptions import RPCError

    return RPCError("DEADLINE_EXCEEDED", f"{method}: no answer within rpc_timeout {seconds:g}s")
