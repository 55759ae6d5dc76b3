"""The frontend's record of tasks handed to workers does not grow without bound when workers die."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from cadenza.engine.clock import ManualClock
from cadenza.engine.frontend import Frontend


def test_expired_handed_out_tasks_are_dropped_as_new_ones_arrive() -> None:
    clock = ManualClock()
    history: Any = SimpleNamespace(clock=clock)
    fe = Frontend(history, matching=None, namespaces=None)  # type: ignore[arg-type]
    for i in range(5000):  # handed out, never answered: their workers died
        fe._handed_out(f"dead-{i}".encode(), timeout_ms=10_000)
    clock.advance(11)  # every one of them has timed out (the server retried their tasks)
    fe._handed_out(b"live", timeout_ms=10_000)
    assert set(fe.outstanding) == {b"live"}
    # Entries still within their timeout are kept.
    for i in range(5000):
        fe._handed_out(f"busy-{i}".encode(), timeout_ms=10_000)
    assert len(fe.outstanding) == 5001
