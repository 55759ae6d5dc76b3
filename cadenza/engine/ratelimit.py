"""Per-namespace request rates at the frontend (``frontend.namespaceRPS`` in dynamic config).

A token bucket per namespace, refilled continuously at the namespace's rate and holding at most
one second's worth, so a burst up to the rate passes and a sustained excess is refused with
RESOURCE_EXHAUSTED (naming the namespace and the limit) before it costs a write.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cadenza.engine.errors import ResourceExhaustedError


class NamespaceRateLimiter:
    def __init__(self, limit_for: Callable[[str], int], now: Callable[[], float] = time.monotonic) -> None:
        self._limit_for = limit_for
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}  # namespace -> (tokens, last refill)

    def admit(self, namespace: str) -> None:
        rate = self._limit_for(namespace)
        if rate <= 0:
            return
        now = self._now()
        tokens, last = self._buckets.get(namespace, (float(rate), now))
        tokens = min(float(rate), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[namespace] = (tokens, now)
            raise ResourceExhaustedError(
                f"namespace {namespace!r} is over its rate of {rate} requests/s on this frontend "
                "(frontend.namespaceRPS); retry with backoff",
                namespace=namespace,
                limit=rate,
            )
        self._buckets[namespace] = (tokens - 1.0, now)
