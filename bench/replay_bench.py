"""Time workflow replay: a long sequential-activity history from scratch, and one cached step.

The history is what the engine writes for a workflow that runs activities one after another:
started, workflow task scheduled/started/completed, activity scheduled/started/completed, workflow
task scheduled/started/completed, ..., workflow execution completed. ``--events`` picks its length
(default about 10,000 events, i.e. about 1,670 activities at six events per round); ``--activities``
sets the count directly.

Run: ``.venv/bin/python bench/replay_bench.py [--events N | --activities N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta
from typing import Any

from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent
from cadenza.sdk import activity, workflow
from cadenza.sdk._runtime import WorkflowInstance
from cadenza.sdk.converter import default_converter
from cadenza.sdk.workflow import WorkflowDefinition

CONVERTER = default_converter()
T0 = 1_700_000_000_000_000


@activity.defn
async def step(order_id: str, index: int) -> str:
    return f"{order_id}-{index}"


@workflow.defn
class OrderWorkflow:
    def __init__(self) -> None:
        self.count = 0

    @workflow.run
    async def run(self, order_id: str, steps: int) -> int:
        for index in range(steps):
            await workflow.execute_activity(
                step, order_id, index, start_to_close_timeout=timedelta(seconds=30)
            )
            self.count += 1
        return self.count


@workflow.defn
class HelloWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(step, name, 0, start_to_close_timeout=timedelta(seconds=5))


class Recorder:
    """Appends events as the engine would, from the commands a worker returns."""

    def __init__(self) -> None:
        self.events: list[HistoryEvent] = []
        self.wft_scheduled = 0
        self.wft_started = 0

    def add(self, event_type: EventType, attributes: dict[str, Any]) -> HistoryEvent:
        event_id = len(self.events) + 1
        event = HistoryEvent(event_id, T0 + event_id * 1000, event_type, 1, 1000 + event_id, attributes)
        self.events.append(event)
        return event

    def start(self, workflow_type: str, *args: Any) -> None:
        self.add(
            EventType.WORKFLOW_EXECUTION_STARTED,
            {
                "workflow_type": workflow_type,
                "task_queue": "orders",
                "input": CONVERTER.to_payloads(args),
                "workflow_task_timeout_ms": 10_000,
                "first_execution_run_id": "run-1",
                "attempt": 1,
            },
        )
        self.next_task()

    def next_task(self) -> None:
        self.wft_scheduled = self.add(EventType.WORKFLOW_TASK_SCHEDULED, {"task_queue": "orders"}).event_id
        self.wft_started = self.add(
            EventType.WORKFLOW_TASK_STARTED, {"scheduled_event_id": self.wft_scheduled}
        ).event_id

    def complete_task(self, commands: list[Command]) -> None:
        completed = self.add(
            EventType.WORKFLOW_TASK_COMPLETED,
            {
                "scheduled_event_id": self.wft_scheduled,
                "started_event_id": self.wft_started,
            },
        ).event_id
        for command in commands:
            attrs = {**command.attributes, "workflow_task_completed_event_id": completed}
            if command.command_type is CommandType.SCHEDULE_ACTIVITY_TASK:
                scheduled = self.add(EventType.ACTIVITY_TASK_SCHEDULED, attrs).event_id
                started = self.add(
                    EventType.ACTIVITY_TASK_STARTED, {"scheduled_event_id": scheduled}
                ).event_id
                self.add(
                    EventType.ACTIVITY_TASK_COMPLETED,
                    {
                        "result": CONVERTER.to_payloads([f"done-{scheduled}"]),
                        "scheduled_event_id": scheduled,
                        "started_event_id": started,
                    },
                )
            elif command.command_type is CommandType.COMPLETE_WORKFLOW_EXECUTION:
                self.add(EventType.WORKFLOW_EXECUTION_COMPLETED, attrs)
            else:
                raise AssertionError(command.command_type)


def new_instance(cls: type) -> WorkflowInstance:
    return WorkflowInstance(
        WorkflowDefinition.from_class(cls),
        namespace="default",
        workflow_id="wf-1",
        run_id="run-1",
        converter=CONVERTER,
    )


def record_history(activities: int) -> list[HistoryEvent]:
    """Run the workflow against a simulated engine, as a cached worker would, and keep the history."""
    recorder = Recorder()
    recorder.start("OrderWorkflow", "ord-000123", activities)
    instance = new_instance(OrderWorkflow)
    while True:
        commands = instance.activate(recorder.events[instance.last_event_id :])
        recorder.complete_task(commands)
        if recorder.events[-1].event_type is EventType.WORKFLOW_EXECUTION_COMPLETED:
            return recorder.events
        recorder.next_task()


def time_replay(events: list[HistoryEvent], repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        commands = new_instance(OrderWorkflow).activate(events)
        timings.append(time.perf_counter() - started)
        assert commands == [], commands
    return timings


def time_cached_step(repeat: int) -> list[float]:
    """Per-activation cost of the second task of hello world on a cached instance."""
    timings = []
    for _ in range(repeat):
        recorder = Recorder()
        recorder.start("HelloWorkflow", "World")
        instance = new_instance(HelloWorkflow)
        recorder.complete_task(instance.activate(recorder.events))
        recorder.next_task()
        tail = recorder.events[instance.last_event_id :]
        started = time.perf_counter()
        commands = instance.activate(tail)
        timings.append(time.perf_counter() - started)
        assert commands[0].command_type is CommandType.COMPLETE_WORKFLOW_EXECUTION
    return timings


async def main_async(args: argparse.Namespace) -> None:
    # Inside a running loop on purpose: that is how the worker calls activate().
    activities = args.activities or max(1, (args.events - 5) // 6)
    events = record_history(activities)
    replay = time_replay(events, args.repeat)
    cached = time_cached_step(max(args.repeat, 200))
    print(f"history: {len(events)} events, {activities} sequential activities")
    print(
        f"full replay from event 1: median {statistics.median(replay) * 1000:.1f} ms, "
        f"best {min(replay) * 1000:.1f} ms over {len(replay)} runs "
        f"({statistics.median(replay) / len(events) * 1e6:.2f} us/event)"
    )
    print(
        f"cached hello-world activation: median {statistics.median(cached) * 1e6:.1f} us, "
        f"best {min(cached) * 1e6:.1f} us over {len(cached)} runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000, help="approximate history length")
    parser.add_argument("--activities", type=int, default=0, help="number of activities (overrides --events)")
    parser.add_argument("--repeat", type=int, default=10)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
