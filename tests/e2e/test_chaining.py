"""Continue-as-new, workflow retries, cron schedules and child workflows, end to end."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from cadenza import workflow
from cadenza.common import RetryPolicy
from cadenza.exceptions import ApplicationError, ChildWorkflowError, WorkflowFailureError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .conftest import run_in_env
from .workflows import Approval


@workflow.defn
class Accumulator:
    @workflow.run
    async def run(self, total: int, rounds_left: int) -> int:
        total += workflow.info().attempt * 10 if rounds_left == 0 else 1
        if rounds_left == 0:
            return total
        workflow.continue_as_new(total, rounds_left - 1)


def test_continue_as_new_carries_state_into_fresh_histories() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="can", workflows=[Accumulator]):
            handle = await env.client.start_workflow(Accumulator.run, 0, 4, id="acc", task_queue="can")
            assert await handle.result() == 4 + 10
            first = await env.client.get_workflow_handle("acc", run_id=handle.first_run_id).fetch_history()
            assert first.events[-1].event_type == EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            # Each run starts a fresh history: the last run's is as short as the first's.
            last = await env.client.get_workflow_handle("acc").fetch_history()
            assert last.run_id != handle.first_run_id
            assert len(last.events) <= len(first.events)
            assert last.events[0].attributes["first_execution_run_id"] == handle.first_run_id
            assert (await env.client.get_workflow_handle("acc").describe()).status == "COMPLETED"

    run_in_env(scenario)


@workflow.defn
class Flaky:
    @workflow.run
    async def run(self) -> int:
        attempt = workflow.info().attempt
        if attempt < 3:
            raise ApplicationError(f"attempt {attempt} failed")
        return attempt


def test_workflow_retry_policy_retries_the_run_until_it_succeeds() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="wretry", workflows=[Flaky]):
            policy = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=5)
            handle = await env.client.start_workflow(
                Flaky.run, id="flaky", task_queue="wretry", retry_policy=policy
            )
            assert await handle.result() == 3
            first = await env.client.get_workflow_handle("flaky", run_id=handle.first_run_id).fetch_history()
            closed = first.events[-1]
            assert closed.event_type == EventType.WORKFLOW_EXECUTION_FAILED
            assert (
                closed.attributes["retry_state"] == "IN_PROGRESS"
                and closed.attributes["new_execution_run_id"]
            )

            policy = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=2)
            handle = await env.client.start_workflow(
                Flaky.run, id="flaky-2", task_queue="wretry", retry_policy=policy
            )
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
            assert "attempt 2 failed" in str(info.value.cause)

    run_in_env(scenario)


@workflow.defn
class Tick:
    @workflow.run
    async def run(self) -> str:
        return workflow.now().isoformat()


def test_cron_schedule_runs_once_per_fire_time_under_time_skipping() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="cron", workflows=[Tick]):
            handle = await env.client.start_workflow(
                Tick.run, id="tick", task_queue="cron", cron_schedule="*/5 * * * *"
            )
            run_id = handle.first_run_id
            fire_times = []
            for _ in range(3):
                h = env.client.get_workflow_handle("tick", run_id=run_id)
                await h.result(follow_runs=False)
                history = (await h.fetch_history()).events
                fire_times.append(
                    history[0].event_time + history[0].attributes["first_workflow_task_backoff_ms"] * 1000
                )
                run_id = history[-1].attributes["new_execution_run_id"]
                assert run_id, "a cron run schedules the next one"
            await env.client.get_workflow_handle("tick").terminate("enough")
        # Every run started on a five-minute boundary, one boundary apart.
        assert all(t % (300 * 1_000_000) < 1_000_000 for t in fire_times), fire_times
        assert [round((b - a) / 1e6) for a, b in itertools.pairwise(fire_times)] == [300, 300]

    run_in_env(scenario, time_skipping=True)


@workflow.defn
class Square:
    @workflow.run
    async def run(self, n: int) -> int:
        if n < 0:
            raise ApplicationError("negative", non_retryable=True)
        return n * n


@workflow.defn
class SumOfSquares:
    @workflow.run
    async def run(self, numbers: list[int]) -> int:
        results = await asyncio.gather(
            *(
                workflow.execute_child_workflow(Square.run, n, id=f"{workflow.info().workflow_id}-sq-{i}")
                for i, n in enumerate(numbers)
            )
        )
        return sum(results)


def test_child_workflows_run_in_parallel_and_report_results_and_failures() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="kids", workflows=[SumOfSquares, Square]):
            assert (
                await env.client.execute_workflow(SumOfSquares.run, [1, 2, 3], id="sos", task_queue="kids")
                == 14
            )
            events = (await env.client.get_workflow_handle("sos").fetch_history()).events
            types = [e.event_type for e in events]
            assert types.count(EventType.START_CHILD_WORKFLOW_EXECUTION_INITIATED) == 3
            assert types.count(EventType.CHILD_WORKFLOW_EXECUTION_STARTED) == 3
            assert types.count(EventType.CHILD_WORKFLOW_EXECUTION_COMPLETED) == 3
            child = await env.client.get_workflow_handle("sos-sq-1").fetch_history()
            assert child.events[0].attributes["parent_workflow_execution"]["workflow_id"] == "sos"

            with pytest.raises(WorkflowFailureError) as info:
                await env.client.execute_workflow(SumOfSquares.run, [1, -1], id="sos-bad", task_queue="kids")
            assert isinstance(info.value.cause, ChildWorkflowError)
            assert "negative" in str(info.value.cause.cause)

    run_in_env(scenario)


@workflow.defn
class Parent:
    @workflow.run
    async def run(self, policy: str) -> str:
        child = await workflow.start_child_workflow(
            Approval.run, 1, id=f"child-{policy}", parent_close_policy=workflow.ParentClosePolicy(policy)
        )
        return child.run_id


def test_parent_close_policy_terminates_or_abandons_running_children() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="pcp", workflows=[Parent, Approval]):
            await env.client.execute_workflow(Parent.run, "TERMINATE", id="parent-t", task_queue="pcp")
            await env.client.execute_workflow(Parent.run, "ABANDON", id="parent-a", task_queue="pcp")
            for _ in range(300):
                if (
                    await env.client.get_workflow_handle("child-TERMINATE").describe()
                ).status == "TERMINATED":
                    break
                await asyncio.sleep(0.01)
            assert (await env.client.get_workflow_handle("child-TERMINATE").describe()).status == "TERMINATED"
            assert (await env.client.get_workflow_handle("child-ABANDON").describe()).status == "RUNNING"

    run_in_env(scenario)


@workflow.defn
class Messenger:
    @workflow.run
    async def run(self, target: str) -> None:
        await workflow.get_external_workflow_handle(target).signal(Approval.approve, "messenger")


def test_signal_to_another_workflow_is_delivered_and_a_missing_target_is_reported() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="ext", workflows=[Messenger, Approval]):
            target = await env.client.start_workflow(Approval.run, 1, id="target", task_queue="ext")
            await env.client.execute_workflow(Messenger.run, "target", id="messenger", task_queue="ext")
            assert await target.result() == ["messenger"]
            with pytest.raises(WorkflowFailureError) as info:
                await env.client.execute_workflow(Messenger.run, "nobody", id="messenger-2", task_queue="ext")
            assert "not found" in str(info.value.cause)

    run_in_env(scenario)


@workflow.defn
class Relay:
    """Counts pings; every run waits for at least one, then hands the count to a fresh run."""

    def __init__(self) -> None:
        self.pings = 0

    @workflow.signal
    def ping(self) -> None:
        self.pings += 1

    @workflow.run
    async def run(self, seen: int, runs_left: int) -> int:
        await workflow.wait_condition(lambda: self.pings > 0)
        if runs_left == 0:
            return seen + self.pings
        workflow.continue_as_new(seen + self.pings, runs_left - 1)


def test_two_hundred_continue_as_new_runs_with_signals_throughout_lose_no_signal() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="relay", workflows=[Relay]):
            handle = await env.client.start_workflow(Relay.run, 0, 200, id="relay", task_queue="relay")
            target = env.client.get_workflow_handle("relay")  # the current run, whichever it is
            accepted = 0
            refused: list[str] = []
            done = asyncio.Event()

            async def pinger() -> None:
                nonlocal accepted
                while not done.is_set():
                    try:
                        await target.signal(Relay.ping)
                        accepted += 1
                    except Exception as e:  # only once the last run has closed
                        refused.append(str(e))
                        return
                    await asyncio.sleep(0.001)

            pingers = [asyncio.create_task(pinger()) for _ in range(4)]
            result = await handle.result()
            done.set()
            await asyncio.gather(*pingers)
        assert result == accepted, (result, accepted)
        assert accepted >= 201  # every run saw at least one
        assert all("already closed" in r for r in refused), refused

    run_in_env(scenario, timeout=60)
