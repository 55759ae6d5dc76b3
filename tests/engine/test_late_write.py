"""A write whose answer was lost but which applies later still has its tasks run.

On Cassandra a conditional write can be accepted, lose its answer (the node is killed, the request
times out) and be completed later by the next lightweight transaction on the shard's partition. The
engine looks such a write's tasks up once the store answers; a lookup made before the write lands
finds nothing, and tasks that land afterwards were never dispatched: the run waited until the next
engine restart. The shard is now fenced (its range moved on, itself such a transaction) before the
lookup, so the write lands before it or never.

The store here is SQLite with the late landing modelled: the chosen write is answered with
StoreUnavailableError and stays accepted, not applied, while reads go on answering and other run
writes are refused as unavailable; the next conditional write on the shard row (a range move or an
ack-level save) completes it first. Only the order matters: a fence lands it before the lookup.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from cadenza import activity, workflow
from cadenza.common import RetryPolicy
from cadenza.engine.history.shard import ShardContext
from cadenza.engine.persistence.errors import StoreUnavailableError
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet,
            name,
            start_to_close_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)),
        )


def land_late(env: WorkflowEnvironment, chosen: Any) -> list[Any]:
    """Answers the first update ``chosen(request)`` picks with StoreUnavailableError and applies it
    just before the next write of the shard row, refusing other writes until then. Returns the
    requests that landed late."""
    stores: Any = env.host.stores
    executions, shards = stores.executions, stores.shards
    plain_update, plain_create = executions.update_workflow_execution, executions.create_workflow_execution
    plain_shard = shards.update_shard
    waiting: list[Any] = []
    landed: list[Any] = []

    async def complete_accepted() -> None:
        while waiting:
            request = waiting.pop()
            await plain_update(request)
            landed.append(request)

    def refuse_while_accepted() -> None:
        if waiting:
            raise StoreUnavailableError("injected: writes wait behind an accepted one")

    async def update(request: Any) -> Any:
        refuse_while_accepted()
        if not landed and chosen(request):
            waiting.append(request)
            raise StoreUnavailableError("injected: the answer to this write was lost")
        return await plain_update(request)

    async def create(request: Any) -> Any:
        refuse_while_accepted()
        return await plain_create(request)

    async def update_shard(*args: Any, **kwargs: Any) -> Any:
        await complete_accepted()
        return await plain_shard(*args, **kwargs)

    executions.update_workflow_execution = update
    executions.create_workflow_execution = create
    shards.update_shard = update_shard
    return landed


def schedules_the_activity(request: Any) -> bool:
    return any(b"greet" in a.node.data for a in request.history)


@pytest.mark.parametrize("fenced", [True, False], ids=["fenced", "unfenced"])
def test_a_write_that_lands_after_its_error_still_has_its_tasks_run(
    fenced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fenced:
        # Without the fence the lookup races the late write: the run must then be stuck, or this
        # test does not model the fault it guards against.
        async def no_fence(self: ShardContext, since: int | None = None) -> None:
            return None

        monkeypatch.setattr(ShardContext, "fence", no_fence)

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        landed = land_late(env, schedules_the_activity)
        try:
            async with Worker(env.client, task_queue="late", workflows=[Greeting], activities=[greet]):
                handle = await env.client.start_workflow(Greeting.run, "late", id="late", task_queue="late")
                try:
                    result = await asyncio.wait_for(handle.result(), 6)
                except TimeoutError:
                    result = None
            assert landed, "the chosen write never landed: the fault was not injected"
            if fenced:
                assert result == "Hello, late!"
            else:
                assert result is None, "the unfenced lookup was not raced: the model does not bite"
        finally:
            await env.shutdown()

    asyncio.run(main())


def test_a_write_refused_by_our_own_range_move_is_retried_and_never_reuses_task_ids() -> None:
    from cadenza.engine.persistence.errors import ConditionFailedError, ShardOwnershipLostError

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        try:
            shard: Any = next(iter(env.host.history.shards.values()))
            await shard.allocate_task_ids(3)
            r = shard.range_id
            # Fenced by ourselves after the write was built: refused, ids keep counting.
            before = await shard.allocate_task_ids(1)
            refused = await shard._write_refused(ShardOwnershipLostError(shard.shard_id, r - 1, r))
            assert isinstance(refused, ConditionFailedError) and not shard.lost
            assert (await shard.allocate_task_ids(1))[0] == before[0] + 1
            # Our own range move applied without its answer: adopted, fresh ids from the new range.
            info = await shard.stores.shards.get_shard(shard.shard_id)
            info.range_id = r + 1
            await shard.stores.shards.update_shard(info, expected_range_id=r)
            refused = await shard._write_refused(ShardOwnershipLostError(shard.shard_id, r, r + 1))
            assert isinstance(refused, ConditionFailedError) and not shard.lost
            assert shard.range_id == r + 1
            assert (await shard.allocate_task_ids(1))[0] > before[0] + 1
            # Another host took the shard: lost.
            info = await shard.stores.shards.get_shard(shard.shard_id)
            info.range_id, info.owner = r + 2, "another-host"
            await shard.stores.shards.update_shard(info, expected_range_id=r + 1)
            error = ShardOwnershipLostError(shard.shard_id, r + 1, r + 2)
            assert await shard._write_refused(error) is error and shard.lost
        finally:
            await env.shutdown()

    asyncio.run(main())


def test_writes_lost_together_wait_for_one_range_move() -> None:
    """Each range move refuses every write of the shard in flight: the writes lost in one outage
    share the first fence begun after them, instead of moving the range once each."""

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        try:
            shard: Any = next(iter(env.host.history.shards.values()))
            before = shard.range_id
            marks = [shard.fence_mark() for _ in range(5)]  # five writes lost in one outage
            await asyncio.gather(*(shard.fence(m) for m in marks))
            assert shard.range_id == before + 1
            # A write lost after that fence began is not settled by it: a new move.
            await shard.fence(shard.fence_mark())
            assert shard.range_id == before + 2
            # Without a mark (the old behaviour): always a move.
            await shard.fence()
            assert shard.range_id == before + 3
        finally:
            await env.shutdown()

    asyncio.run(main())


def completes_the_activity(request: Any) -> bool:
    """The write that records the activity's completion (events 6 or 7 on): the write that
    schedules the workflow task reacting to it, held or not."""
    return any(a.node.node_id in (6, 7) for a in request.history)


def test_a_write_that_lands_late_wakes_the_client_waiting_for_the_result() -> None:
    """The write recording the activity's completion (and here, with it held, the whole rest of
    the run) loses its answer and lands later, at the fence before its tasks are looked up. The
    client waiting for the result is woken then, as after any write, instead of waiting out its
    long poll; and the run's state is read again only after a fence (``ShardContext.load_state``),
    so nothing is decided against a state older than the store."""

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        landed = land_late(env, completes_the_activity)
        try:
            async with Worker(env.client, task_queue="late", workflows=[Greeting], activities=[greet]):
                handle = await env.client.start_workflow(Greeting.run, "late", id="late", task_queue="late")
                result = await asyncio.wait_for(handle.result(), 10)
            assert landed, "the chosen write never landed: the fault was not injected"
            assert result == "Hello, late!"
        finally:
            await env.shutdown()

    asyncio.run(main())
