"""Forwarding requests from a standby cluster to the namespace's active cluster.

A client or worker in any data centre talks to its own cluster. Where that cluster is standby for
a global namespace, the selected APIs (start, signal-with-start, signal, cancel, terminate, query,
reset, describe: the anchors' ``selected-apis-forwarding``) are sent on to the active cluster and
its answer (or error) returned, so clients keep working across a failover without changing their
address. Polls are never forwarded: a worker serves the cluster it is connected to.

A forwarded request is marked (``FORWARDED``; over gRPC the ``cadenza-forwarded`` header), and a
marked request is never forwarded again: two clusters that briefly disagree about which one is
active answer NamespaceNotActive instead of passing the request back and forth.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, cast

from cadenza.engine.errors import NamespaceNotActiveError

FORWARDED: ContextVar[bool] = ContextVar("cadenza_forwarded", default=False)
"""True while a request forwarded by another cluster is handled."""

CALLER_TOKEN: ContextVar[str | None] = ContextVar("cadenza_caller_token", default=None)
"""The bearer token of the request being handled, set once this frontend's authorization accepted
it ('' when it was accepted on its client certificate alone); None on an open frontend. A
forwarded request carries the caller's own token, so the active cluster decides as if the caller
had called it (``cadenza.replication.credentials``)."""

FORWARDED_HEADER = "cadenza-forwarded"
SETTLE_S = 5.0
"""How long a request waits for clusters that disagree about a namespace's active cluster."""


class Forwarder(Protocol):
    async def target(self, namespace: str) -> str | None:
        """The cluster to forward a request of ``namespace`` to, or None to handle it here."""
        ...

    @property
    def current(self) -> str:
        """This cluster's name."""
        ...

    def can_forward(self, namespace: str, cluster: str) -> bool:
        """Whether a request refused here as not active may go to ``cluster``."""
        ...

    async def call(self, cluster: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Calls ``method`` of ``cluster``'s frontend; its errors come back as ``ServiceError``."""
        ...


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def forwardable(fn: F) -> F:
    """Marks a frontend method whose requests go to the active cluster when this one is standby.
    The method's first argument is the namespace name or a request with a ``namespace``."""
    return forwardable_when(None)(fn)


def forwardable_when(when: Callable[[Any], bool] | None) -> Callable[[F], F]:
    """``forwardable`` for the requests (the method's first argument) ``when`` accepts: a client
    long-polling for a result it started through a standby waits on the active cluster, which has
    the run first; a plain history read is answered here."""
    return lambda fn: _forwardable(fn, when)


def _forwardable(fn: F, when: Callable[[Any], bool] | None) -> F:
    method = fn.__name__

    @functools.wraps(fn)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        fwd: Forwarder | None = self.forwarder
        if fwd is None or FORWARDED.get():
            return await fn(self, *args, **kwargs)
        first = args[0] if args else next(iter(kwargs.values()))
        if when is not None and not when(first):
            return await fn(self, *args, **kwargs)
        namespace = first if isinstance(first, str) else first.namespace
        deadline = time.monotonic() + SETTLE_S
        delay = 0.02
        hint: str | None = None
        while True:
            target = hint or await fwd.target(namespace)
            hint = None
            try:
                if target is None:
                    try:
                        return await fn(self, *args, **kwargs)
                    except NamespaceNotActiveError as e:
                        # Active here, but the run was written by a newer version elsewhere (a
                        # failover this cluster has not seen yet): the writer decides.
                        if not fwd.can_forward(namespace, e.active_cluster):
                            raise
                        target = e.active_cluster
                return await fwd.call(target, method, *args, **kwargs)
            except NamespaceNotActiveError as e:
                # The clusters' views of a failover that is still replicating disagree. If the
                # target names a third cluster, it knows of a later failover than this one: go
                # there. If it names this one, ask again (this cluster may have become active)
                # until the views meet.
                if time.monotonic() + delay > deadline or target is None:
                    raise
                if e.active_cluster not in (fwd.current, target) and fwd.can_forward(
                    namespace, e.active_cluster
                ):
                    hint = e.active_cluster
                    continue
                if e.active_cluster != fwd.current:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    return cast(F, call)
