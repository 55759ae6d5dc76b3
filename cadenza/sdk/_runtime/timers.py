"""Durable timers: what ``call_later`` on the workflow loop turns into."""

from __future__ import annotations

import math

from cadenza.schemas.events import Command, CommandType, HistoryEvent
from cadenza.sdk._runtime.commands import CommandQueue, CommandRecord
from cadenza.sdk._runtime.loop import WorkflowEventLoop, WorkflowTimerHandle

__all__ = ["Timers"]


class Timers:
    """The pending timers of one workflow run, by timer id."""

    def __init__(self, loop: WorkflowEventLoop, commands: CommandQueue) -> None:
        self._loop = loop
        self._commands = commands
        self._seq = 0
        self._pending: dict[str, tuple[WorkflowTimerHandle, CommandRecord]] = {}

    def start(self, delay: float, handle: WorkflowTimerHandle) -> None:
        """Create the START_TIMER command for ``handle``, due after ``delay`` (> 0) seconds."""
        self._seq += 1
        # Deterministic ids: the same code starts timers in the same order on replay.
        timer_id = str(self._seq)
        handle.timer_id = timer_id
        # Round up: a durable sleep must never end before the time asked for.
        ms = max(1, math.ceil(delay * 1000 - 1e-9))
        record = self._commands.add(
            Command(CommandType.START_TIMER, {"timer_id": timer_id, "start_to_fire_timeout_ms": ms})
        )
        self._pending[timer_id] = (handle, record)

    def cancel(self, handle: WorkflowTimerHandle) -> None:
        """``handle`` was cancelled; cancel its timer unless it already fired."""
        entry = self._pending.pop(handle.timer_id or "", None)
        if entry is None:
            return
        record = entry[1]
        if not record.sent:
            # Started and cancelled within one task: neither command needs to reach the engine.
            record.removed = True
        else:
            self._commands.add(Command(CommandType.CANCEL_TIMER, {"timer_id": handle.timer_id}))

    def apply_fired(self, event: HistoryEvent) -> None:
        """TimerFired: run the handle's callback in this activation."""
        entry = self._pending.pop(event.attributes.get("timer_id", ""), None)
        if entry is not None:
            self._loop.fire(entry[0])
