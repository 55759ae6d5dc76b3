"""Overload protection at the frontend: request rates and concurrent long polls.

Two kinds of work are limited separately, so neither starves the other:

* **API requests** (start, signal, cancel, terminate, reset, update: the calls that cost a write)
  take one token from the namespace's bucket (``frontend.namespaceRPS``) and one from the host's
  (``frontend.rps``). A bucket refills continuously at its rate and holds at most one second's
  worth, so a burst up to the rate passes and a sustained excess is refused. A request is
  admitted only when *both* buckets have a token, and then takes from both; a refusal takes
  nothing, so a refused request never uses up another namespace's share of the host.
* **Long polls** (a worker's task polls) take no tokens: a poll holds a slot for up to a minute,
  so its cost is concurrency, not rate. They are bounded by ``frontend.namespaceCount`` open polls
  per namespace on this frontend and ``frontend.namespaceCountPerIdentity`` per client identity
  within a namespace, so one client cannot hold every slot. A flood of starts therefore cannot
  refuse a worker's poll (the worker that would drain the flood), and a crowd of pollers cannot
  refuse a start.

A refusal is ``ResourceExhaustedError`` naming the namespace, the limit's key and value, and
``retry_after_ms``: for a rate, the time until the bucket holds a token again; for a poll slot,
``POLL_SLOT_RETRY_MS`` (a slot frees when some poll returns, which cannot be predicted). The gRPC
server sends the hint as ``retry-after-ms`` trailing metadata too; clients wait at least that long.

Each limit's value comes from dynamic config when an entry matches (re-read while the server
runs), else from the static config (``services.frontend.limits``, ``FrontendLimits``); 0 turns a
limit off. The keys are Temporal's where it has them (``frontend.rps``, ``frontend.namespaceRPS``,
``frontend.namespaceCount``); the per-identity cap is this server's own. A client's identity is what
the client says it is: the cap guards against a misconfigured worker, not against an adversary
(that is authorization's job).

The clock is injected (``now``): tests drive the buckets with a fake one.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from cadenza.engine.errors import ResourceExhaustedError

HOST_RPS = "frontend.rps"
NAMESPACE_RPS = "frontend.namespaceRPS"
NAMESPACE_POLLS = "frontend.namespaceCount"
IDENTITY_POLLS = "frontend.namespaceCountPerIdentity"

POLL_SLOT_RETRY_MS = 1000
"""The hint given with a refused poll: about how often a busy namespace's polls return."""

_MAX_IDLE_BUCKETS = 1024
"""Above this many namespace buckets, full ones (equivalent to none) are dropped: a client naming
namespaces at random must not grow the table without bound."""

K = TypeVar("K")

LimitFor = Callable[[str, str], int]
"""``limit_for(key, namespace)``: the value in force for one of the keys above (``namespace`` is
"" for host-wide keys); 0 or less means no limit."""


@dataclass(frozen=True, slots=True)
class FrontendLimits:
    """The static limits (``services.frontend.limits`` in the server config), used where dynamic
    config has no matching entry. 0: no limit."""

    rps: int = 0
    """``frontend.rps``: API requests per second on this frontend, all namespaces together."""
    namespace_rps: int = 0
    """``frontend.namespaceRPS``: API requests per second of one namespace on this frontend."""
    namespace_count: int = 1200
    """``frontend.namespaceCount``: open long polls of one namespace on this frontend (Temporal's
    default)."""
    namespace_count_per_identity: int = 600
    """``frontend.namespaceCountPerIdentity``: open long polls of one client identity within a
    namespace; half the namespace's slots by default, so one client never holds them all."""

    def value(self, key: str) -> int:
        return {
            HOST_RPS: self.rps,
            NAMESPACE_RPS: self.namespace_rps,
            NAMESPACE_POLLS: self.namespace_count,
            IDENTITY_POLLS: self.namespace_count_per_identity,
        }[key]


class TokenBucket:
    """Tokens refilled continuously at ``rate`` per second, at most ``rate`` held (one second's
    burst). The rate is given at each use, so a changed limit applies at once."""

    __slots__ = ("_last", "_tokens")

    def __init__(self, rate: float, now: float) -> None:
        self._tokens = float(rate)
        self._last = now

    def level(self, rate: float, now: float) -> float:
        """Tokens held at ``now`` (refilled since the last look, capped at the burst)."""
        if now > self._last:
            self._tokens += (now - self._last) * rate
            self._last = now
        self._tokens = min(self._tokens, float(rate))
        return self._tokens

    def wait_s(self, rate: float, now: float, cost: int = 1) -> float:
        """Seconds until ``cost`` tokens are held (0: they are now). A cost above the burst waits
        for a full bucket, which then lets it through (it could never hold more)."""
        missing = min(float(cost), rate) - self.level(rate, now)
        return missing / rate if missing > 0 else 0.0

    def take(self) -> None:
        self._tokens -= 1.0


_ADMITTED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "cadenza_admitted_namespaces", default=frozenset()
)
"""Namespaces whose tokens the current request has already paid for (a composite call such as
update-with-start admits once for all its parts, so no part is refused after another was done)."""


class RequestRateLimiter:
    """The API request buckets: one per namespace, one for the host (see the module docstring)."""

    def __init__(self, limit_for: LimitFor, now: Callable[[], float] = time.monotonic) -> None:
        self._limit_for = limit_for
        self._now = now
        self._host: TokenBucket | None = None
        self._namespaces: dict[str, TokenBucket] = {}

    def admit(self, namespace: str, cost: int = 1) -> None:
        """Takes ``cost`` tokens from the namespace's bucket and the host's, or raises
        ``ResourceExhaustedError`` (with ``retry_after_ms``) taking none."""
        if namespace in _ADMITTED.get():
            return
        host_rate = self._limit_for(HOST_RPS, "")
        ns_rate = self._limit_for(NAMESPACE_RPS, namespace)
        if host_rate <= 0 and ns_rate <= 0:
            return
        now = self._now()
        ns_bucket = self._namespace_bucket(namespace, ns_rate, now) if ns_rate > 0 else None
        host_bucket = None
        if host_rate > 0:
            if self._host is None:
                self._host = TokenBucket(host_rate, now)
            host_bucket = self._host
        ns_wait = host_wait = 0.0
        if ns_bucket is not None:
            ns_wait = ns_bucket.wait_s(ns_rate, now, cost)
        if host_bucket is not None:
            host_wait = host_bucket.wait_s(host_rate, now, cost)
        if ns_wait > 0 or host_wait > 0:
            if ns_wait >= host_wait:
                raise _refused(
                    f"namespace {namespace!r} is over its rate of {ns_rate} requests/s on this "
                    f"frontend ({NAMESPACE_RPS})",
                    namespace,
                    NAMESPACE_RPS,
                    ns_rate,
                    ns_wait,
                )
            raise _refused(
                f"this frontend is over its rate of {host_rate} requests/s for all namespaces "
                f"({HOST_RPS}); refused a request of namespace {namespace!r}",
                namespace,
                HOST_RPS,
                host_rate,
                host_wait,
            )
        for _ in range(cost):
            if ns_bucket is not None:
                ns_bucket.take()
            if host_bucket is not None:
                host_bucket.take()

    @contextmanager
    def admitted(self, namespace: str, cost: int) -> Iterator[None]:
        """Admits ``cost`` requests of ``namespace`` at once; inside, this request's own calls to
        ``admit`` for that namespace pass (they are paid for)."""
        self.admit(namespace, cost)
        token = _ADMITTED.set(_ADMITTED.get() | {namespace})
        try:
            yield
        finally:
            _ADMITTED.reset(token)

    def _namespace_bucket(self, namespace: str, rate: int, now: float) -> TokenBucket:
        bucket = self._namespaces.get(namespace)
        if bucket is None:
            if len(self._namespaces) >= _MAX_IDLE_BUCKETS:
                self._drop_full(now)
            bucket = self._namespaces[namespace] = TokenBucket(rate, now)
        return bucket

    def _drop_full(self, now: float) -> None:
        for name, bucket in list(self._namespaces.items()):
            rate = self._limit_for(NAMESPACE_RPS, name)
            if rate <= 0 or bucket.level(rate, now) >= rate:
                del self._namespaces[name]


def _refused(message: str, namespace: str, key: str, limit: int, wait_s: float) -> ResourceExhaustedError:
    retry_after_ms = max(1, math.ceil(wait_s * 1000))
    return ResourceExhaustedError(
        f"{message}; retry in {retry_after_ms} ms",
        namespace=namespace,
        limit_name=key,
        limit=limit,
        retry_after_ms=retry_after_ms,
    )


class LongPollLimiter:
    """Open long polls per namespace and per (namespace, identity) on this frontend."""

    def __init__(self, limit_for: LimitFor) -> None:
        self._limit_for = limit_for
        self._by_namespace: dict[str, int] = {}
        self._by_identity: dict[tuple[str, str], int] = {}

    def open_polls(self, namespace: str, identity: str | None = None) -> int:
        if identity is None:
            return self._by_namespace.get(namespace, 0)
        return self._by_identity.get((namespace, identity), 0)

    @contextmanager
    def slot(self, namespace: str, identity: str) -> Iterator[None]:
        """Holds one poll slot while the block runs, or raises ``ResourceExhaustedError`` (with
        ``retry_after_ms``) holding none."""
        ns_cap = self._limit_for(NAMESPACE_POLLS, namespace)
        id_cap = self._limit_for(IDENTITY_POLLS, namespace)
        key = (namespace, identity)
        held = self._by_namespace.get(namespace, 0)
        mine = self._by_identity.get(key, 0)
        if 0 < id_cap <= mine:
            raise _poll_refused(
                f"client {identity!r} already holds {mine} open polls of namespace {namespace!r}, "
                f"its limit on this frontend ({IDENTITY_POLLS} = {id_cap})",
                namespace,
                IDENTITY_POLLS,
                id_cap,
            )
        if 0 < ns_cap <= held:
            raise _poll_refused(
                f"namespace {namespace!r} already has {held} open polls, its limit on this frontend "
                f"({NAMESPACE_POLLS} = {ns_cap})",
                namespace,
                NAMESPACE_POLLS,
                ns_cap,
            )
        self._by_namespace[namespace] = held + 1
        self._by_identity[key] = mine + 1
        try:
            yield
        finally:
            _release(self._by_namespace, namespace)
            _release(self._by_identity, key)


def _release(counts: dict[K, int], key: K) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]  # an idle namespace or client leaves nothing behind


def _poll_refused(message: str, namespace: str, key: str, limit: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"{message}; retry in {POLL_SLOT_RETRY_MS} ms",
        namespace=namespace,
        limit_name=key,
        limit=limit,
        retry_after_ms=POLL_SLOT_RETRY_MS,
    )
