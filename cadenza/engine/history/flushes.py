"""In-memory changes of a run and the bound on how long they stay unwritten.

Speculative task starts (see ``HistoryEngine.mutate``) change only the cached state; the run's next
write carries them. A run that gets no write within a bound is written on its own. ``FlushSchedule``
keeps one timer for all such runs rather than one per start (a busy engine makes thousands of starts
a second, and every timer handle is garbage to collect), and skips a run that was written since.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from cadenza.engine.history.mutable_state import MutableState
from cadenza.engine.history.shard import RunContext
from cadenza.engine.history.tasks import Task, TimerKind


class FlushSchedule:
    """Runs to write once ``delay_s`` has passed since a speculative start, unless written before."""

    def __init__(self, delay_s: float, flush: Callable[[RunContext], None]) -> None:
        self.delay_s = delay_s
        self._flush = flush
        # Deadlines only grow (one delay for all), so the earliest is always at the left.
        self._due: collections.deque[tuple[float, RunContext, int]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, ctx: RunContext) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + self.delay_s
        self._due.append((when, ctx, ctx.writes))
        if self._timer is None:
            self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        flushed: set[int] = set()
        while self._due and self._due[0][0] <= now:
            _, ctx, writes = self._due.popleft()
            # A write since the change carried it; a dropped state lost it (and re-offered its tasks).
            if ctx.writes != writes or ctx.state is None or not ctx.deferred:
                continue
            if id(ctx) not in flushed:
                flushed.add(id(ctx))
                self._flush(ctx)
        if self._due:
            self._timer = loop.call_at(self._due[0][0], self._fire)

    def pending(self) -> list[RunContext]:
        """The runs whose change is still unwritten (what a stopping host writes before it goes)."""
        runs: dict[int, RunContext] = {}
        for _, ctx, writes in self._due:
            if ctx.writes == writes and ctx.state is not None and ctx.deferred:
                runs[id(ctx)] = ctx
        return list(runs.values())

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()


def start_still_pending(ms: MutableState, t: Task) -> bool:
    """Whether the timer of a speculative start still guards something when the run is written."""
    a = t.args
    if not ms.is_running:
        return False
    if t.kind == TimerKind.WORKFLOW_TASK_TIMEOUT:
        wt = ms.workflow_task
        return (
            wt.scheduled_event_id == a["s"]
            and wt.attempt == a["a"]
            and bool(wt.started_event_id)
            and a.get("r", wt.request_id) == wt.request_id
        )
    if t.kind == TimerKind.ACTIVITY_TIMEOUT:
        info = ms.activities.get(a["s"])
        return info is not None and info.attempt == a["a"] and bool(info.started_time)
    return True
