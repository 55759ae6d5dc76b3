"""Workflows for the Cassandra fencing and fault tests: activities plus signals, so a lost update
(a signal or an activity result that vanished) or a duplicate shows in the result and the history."""

from __future__ import annotations

from datetime import timedelta

from cadenza import activity, workflow
from cadenza.common import RetryPolicy
from cadenza.schemas.events import EventType
from cadenza.sdk.history import WorkflowHistory

STEPS = 3


@activity.defn
async def echo(value: str) -> str:
    return f"did {value}"


@workflow.defn
class Collector:
    """Runs ``STEPS`` activities, then waits for ``signals`` signals; returns everything it saw."""

    def __init__(self) -> None:
        self.got: list[str] = []

    @workflow.run
    async def run(self, signals: int) -> list[str]:
        done = []
        for i in range(STEPS):
            done.append(
                await workflow.execute_activity(
                    echo,
                    f"step-{i}",
                    start_to_close_timeout=timedelta(seconds=2),
                    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
                )
            )
        await workflow.wait_condition(lambda: len(self.got) >= signals)
        return done + sorted(self.got)

    @workflow.signal
    def add(self, value: str) -> None:
        self.got.append(value)


def expected_result(signals: list[str]) -> list[str]:
    return [f"did step-{i}" for i in range(STEPS)] + sorted(signals)


def check_history(workflow_id: str, history: WorkflowHistory, signals: list[str]) -> None:
    """Dense event ids, one close, every acknowledged signal exactly once."""
    events = history.events
    ids = [e.event_id for e in events]
    assert ids == list(range(1, len(events) + 1)), f"{workflow_id}: event ids not dense: {ids}"
    closes = [e for e in events if e.event_type == EventType.WORKFLOW_EXECUTION_COMPLETED]
    assert len(closes) == 1, f"{workflow_id}: {len(closes)} completion events"
    seen = [e for e in events if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED]
    assert len(seen) == len(signals), f"{workflow_id}: {len(seen)} signal events for {len(signals)} signals"
