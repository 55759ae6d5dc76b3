"""Workflow updates end to end: results, validators, async handlers, dedup, closed runs,
update-with-start and replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from e2e.conftest import run_in_env

from cadenza import workflow
from cadenza.client import (
    WithStartWorkflowOperation,
    WorkflowIDConflictPolicy,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from cadenza.exceptions import ApplicationError, CadenzaError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

QUEUE = "updates"


@workflow.defn
class Counter:
    def __init__(self) -> None:
        self.total = 0
        self.released = False
        self.done = False

    @workflow.run
    async def run(self, start: int) -> int:
        self.total = start
        await workflow.wait_condition(lambda: self.done)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.total

    @workflow.update
    def add(self, n: int) -> int:
        self.total += n
        return self.total

    @add.validator
    def check_add(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"cannot add {n}: negative")

    @workflow.update(name="add_when_released")
    async def add_later(self, n: int) -> str:
        await workflow.wait_condition(lambda: self.released)
        self.total += n
        return f"total {self.total}"

    @workflow.update
    def fail(self, why: str) -> None:
        raise ApplicationError(f"refused: {why}", type="Refused")

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def value(self) -> int:
        return self.total


def _start(env: WorkflowEnvironment, wid: str, start: int = 0):  # type: ignore[no-untyped-def]
    return env.client.start_workflow(Counter.run, start, id=wid, task_queue=QUEUE)


def test_execute_update_returns_the_handler_result_and_records_two_events() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[Counter]):
            handle = await _start(env, "upd-result", 10)
            assert await handle.execute_update(Counter.add, 5) == 15
            assert await handle.execute_update("add", args=[2], id="second") == 17
            assert await handle.query(Counter.value) == 17
            with pytest.raises(WorkflowUpdateFailedError) as failed:
                await handle.execute_update(Counter.fail, "no")
            assert "refused: no" in str(failed.value.cause)
            await handle.signal(Counter.finish)
            assert await handle.result() == 17
            history = await handle.fetch_history()
        types = [e.event_type for e in history.events]
        assert types.count(EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED) == 3
        assert types.count(EventType.WORKFLOW_EXECUTION_UPDATE_COMPLETED) == 3
        accepted = next(
            e for e in history.events if e.event_type is EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        )
        assert accepted.attributes["name"] == "add"
        # Replaying the history reproduces the run, handlers included.
        await Replayer(workflows=[Counter]).replay_workflow(history)

    run_in_env(scenario)


def test_a_rejected_update_leaves_history_unchanged() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[Counter]):
            handle = await _start(env, "upd-reject", 1)
            assert await handle.execute_update(Counter.add, 1) == 2
            before = (await handle.fetch_history()).events
            with pytest.raises(WorkflowUpdateFailedError) as rejected:
                await handle.execute_update(Counter.add, -3)
            assert "cannot add -3: negative" in str(rejected.value.cause)
            with pytest.raises(WorkflowUpdateFailedError, match="no update handler 'nope'"):
                await handle.execute_update("nope", 1)
            after = (await handle.fetch_history()).events
            assert [(e.event_id, e.event_type) for e in after] == [(e.event_id, e.event_type) for e in before]
            # The run goes on as if nothing happened.
            assert await handle.execute_update(Counter.add, 4) == 6
            await handle.signal(Counter.finish)
            assert await handle.result() == 6

    run_in_env(scenario)


def test_async_handler_waits_for_a_signal_and_stages_are_reported() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[Counter]):
            handle = await _start(env, "upd-async", 1)
            update = await handle.start_update(
                Counter.add_later, 9, id="later", wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
            assert update.id == "later" and update.workflow_id == "upd-async"
            history = (await handle.fetch_history()).events
            assert any(e.event_type is EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED for e in history)
            assert not any(e.event_type is EventType.WORKFLOW_EXECUTION_UPDATE_COMPLETED for e in history)
            waiting = asyncio.ensure_future(update.result())
            await asyncio.sleep(0.2)
            assert not waiting.done()
            await handle.signal(Counter.release)
            assert await waiting == "total 10"
            # The handle by id sees the same outcome.
            assert await handle.get_update_handle("later").result() == "total 10"
            await handle.signal(Counter.finish)
            assert await handle.result() == 10
            history = await handle.fetch_history()
        await Replayer(workflows=[Counter]).replay_workflow(history)

    run_in_env(scenario)


def test_updates_are_deduplicated_by_id_also_after_completion() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[Counter]):
            handle = await _start(env, "upd-dedup", 0)
            first, second = await asyncio.gather(
                handle.execute_update(Counter.add, 5, id="once"),
                handle.execute_update(Counter.add, 5, id="once"),
            )
            assert first == second == 5
            assert await handle.execute_update(Counter.add, 5, id="once") == 5
            assert await handle.query(Counter.value) == 5
            await handle.signal(Counter.finish)
            assert await handle.result() == 5
            # After the run closed, the same id still gets the recorded outcome.
            assert await handle.execute_update(Counter.add, 5, id="once") == 5
            history = (await handle.fetch_history()).events
        accepted = [e for e in history if e.event_type is EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
        assert len(accepted) == 1

    run_in_env(scenario)


def test_an_update_on_a_closed_workflow_fails_naming_it() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[Counter]):
            handle = await _start(env, "upd-closed", 3)
            await handle.signal(Counter.finish)
            assert await handle.result() == 3
            with pytest.raises(CadenzaError, match=r"upd-closed.*closed"):
                await handle.execute_update(Counter.add, 1)

    run_in_env(scenario)


def test_update_with_start_starts_the_workflow_or_updates_the_running_one() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[Counter]):
            op = WithStartWorkflowOperation(
                Counter.run,
                100,
                id="upd-with-start",
                task_queue=QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            assert (
                await env.client.execute_update_with_start_workflow(
                    Counter.add, 1, start_workflow_operation=op
                )
                == 101
            )
            handle = await op.workflow_handle()
            again = WithStartWorkflowOperation(
                Counter.run,
                0,
                id="upd-with-start",
                task_queue=QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            update = await env.client.start_update_with_start_workflow(
                Counter.add, 2, start_workflow_operation=again, wait_for_stage=WorkflowUpdateStage.ACCEPTED
            )
            assert await update.result() == 103
            assert (await again.workflow_handle()).first_run_id == handle.first_run_id
            await handle.signal(Counter.finish)
            assert await handle.result() == 103

    run_in_env(scenario)


def test_update_rpc_timeout_is_reported() -> None:
    from cadenza.client import WorkflowUpdateRPCTimeoutOrCancelledError

    async def scenario(env: WorkflowEnvironment) -> None:
        # No worker: the update is admitted but nobody accepts it.
        handle = await _start(env, "upd-timeout", 0)
        with pytest.raises(WorkflowUpdateRPCTimeoutOrCancelledError):
            await handle.execute_update(Counter.add, 1, id="late", rpc_timeout=timedelta(seconds=0.3))
        # A worker that comes later runs the admitted update once; asking again by id gets it.
        async with Worker(env.client, task_queue=QUEUE, workflows=[Counter]):
            assert await handle.execute_update(Counter.add, 1, id="late") == 1
            assert await handle.query(Counter.value) == 1

    run_in_env(scenario)
