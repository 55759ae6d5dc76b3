"""Workflows that exercise every kind of event a standby must replicate."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cadenza import activity, workflow
from cadenza.common import RetryPolicy

QUICK = timedelta(seconds=10)


@activity.defn
async def double(n: int) -> int:
    return 2 * n


@workflow.defn
class Child:
    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(double, n, start_to_close_timeout=QUICK)


@workflow.defn
class Mixed:
    """An activity, a timer, a child, a signal it waits for, and one continue-as-new."""

    def __init__(self) -> None:
        self.signals: list[str] = []

    @workflow.run
    async def run(self, n: int, rounds: int) -> int:
        total = await workflow.execute_activity(double, n, start_to_close_timeout=QUICK)
        await asyncio.sleep(0.01)
        total += await workflow.execute_child_workflow(
            Child.run, n, id=f"{workflow.info().workflow_id}-child-{rounds}"
        )
        if rounds > 1:
            workflow.continue_as_new(total, rounds - 1)
        await workflow.wait_condition(lambda: bool(self.signals))
        return total + len(self.signals)

    @workflow.signal
    def go(self, who: str) -> None:
        self.signals.append(who)


@workflow.defn
class Waiter:
    """Collects signals until told to finish; returns what it received."""

    def __init__(self) -> None:
        self.signals: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: "finish" in self.signals)
        return self.signals

    @workflow.signal
    def note(self, what: str) -> None:
        self.signals.append(what)


PROGRESS: dict[str, asyncio.Event] = {}
"""Per workflow id: set by a test to let ``report_progress`` finish."""


@activity.defn
async def report_progress(key: str) -> str:
    info = activity.info()
    if info.attempt == 1:
        activity.heartbeat("first-attempt")
        raise RuntimeError("the first attempt fails")
    activity.heartbeat(f"step-{info.attempt}")
    await PROGRESS.setdefault(key, asyncio.Event()).wait()
    return "done"


@workflow.defn
class Progress:
    @workflow.run
    async def run(self, key: str) -> str:
        return await workflow.execute_activity(
            report_progress,
            key,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
        )
