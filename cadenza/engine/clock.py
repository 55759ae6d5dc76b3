"""Clocks, injected wherever time matters.

The engine never calls ``time.time()`` or ``asyncio.sleep`` for durable time: timers, timeouts and event
times all come from a ``Clock``. ``SystemClock`` is the real one; ``ManualClock`` only moves when told
to (unit tests); ``SkippingClock`` jumps straight to the next due deadline whenever nothing else is
happening, which is how the time-skipping test environment finishes hour-long timers instantly.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch."""
        ...

    async def sleep_until(self, deadline_us: int) -> None:
        """Returns once ``now_us() >= deadline_us`` (or is cancelled)."""
        ...

    def wake(self) -> None:
        """Tells sleepers that deadlines may have changed (a fake clock was advanced)."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000

    async def sleep_until(self, deadline_us: int) -> None:
        delay = (deadline_us - self.now_us()) / 1e6
        if delay > 0:
            await asyncio.sleep(delay)

    def wake(self) -> None:
        pass


class ManualClock:
    """A clock that moves only through ``advance``/``set``; sleepers wake when their deadline passes."""

    def __init__(self, start_us: int = 1_700_000_000_000_000) -> None:
        self._now = start_us
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_us(self) -> int:
        return self._now

    def set(self, now_us: int) -> None:
        if now_us < self._now:
            raise ValueError(f"clock cannot go backwards: {now_us} < {self._now}")
        self._now = now_us
        self._release()

    def advance(self, seconds: float) -> None:
        self.set(self._now + int(seconds * 1_000_000))

    async def sleep_until(self, deadline_us: int) -> None:
        if deadline_us <= self._now:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_us, next(self._seq), fut))
        await fut

    def next_deadline(self) -> int | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def wake(self) -> None:
        self._release()

    def _release(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


class SkippingClock(ManualClock):
    """Real time, except that while the engine is idle it jumps to the next durable deadline.

    "Idle" is decided by the owner (the test environment), which calls ``skip_to_next_deadline`` when
    no workflow or activity task is in flight. Time only ever moves forward.
    """

    def __init__(self) -> None:
        super().__init__(time.time_ns() // 1000)
        self._offset = self._now - time.monotonic_ns() // 1000

    def now_us(self) -> int:
        real = time.monotonic_ns() // 1000 + self._offset
        if real > self._now:
            self._now = real
        return self._now

    async def sleep_until(self, deadline_us: int) -> None:
        # Sleep in real time too, so short real waits (activity retries of a second) still happen
        # without a skip; whichever comes first wins.
        if deadline_us <= self.now_us():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_us, next(self._seq), fut))
        loop = asyncio.get_running_loop()
        handle = loop.call_later((deadline_us - self.now_us()) / 1e6, self._release_real)
        try:
            await fut
        finally:
            handle.cancel()

    def _release_real(self) -> None:
        self.now_us()
        self._release()

    def skip_to_next_deadline(self) -> bool:
        deadline = self.next_deadline()
        if deadline is None:
            return False
        if deadline > self.now_us():
            self._offset += deadline - self._now
            self._now = deadline
        self._release()
        return True
