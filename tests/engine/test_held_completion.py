"""An activity's completion rides on the workflow task it schedules (``HistoryEngine._hold_write``):
one write per activity instead of two, and the activity's worker is answered only once the
completion is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from e2e.workflows import QUICK, HelloWorkflow, say_hello

from cadenza import activity, workflow
from cadenza.engine.persistence.errors import StoreUnavailableError
from cadenza.engine.persistence.protocols import HistoryAppend, HistoryNode
from cadenza.schemas.codec import encode_events
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

E = EventType
COMPLETION_ALONE = [E.ACTIVITY_TASK_STARTED, E.ACTIVITY_TASK_COMPLETED, E.WORKFLOW_TASK_SCHEDULED]


def record_writes(env: WorkflowEnvironment, log: list[Any]) -> None:
    """Appends the event types of every run update to ``log``, once it has committed."""
    for shard in env.host.history.shards.values():
        plain = shard.update_run

        async def update_run(
            ctx: Any, ms: Any, *args: Any, _plain: Callable[..., Any] = plain, **kw: Any
        ) -> Any:
            types = [e.event_type for e in ms.pending_events]
            result = await _plain(ctx, ms, *args, **kw)
            log.append(types)
            return result

        shard.update_run = update_run  # type: ignore[method-assign]


def record_activity_answers(env: WorkflowEnvironment, log: list[Any]) -> None:
    service: Any = env.client.service
    plain = service.respond_activity_task_completed

    async def respond(*args: Any, **kwargs: Any) -> Any:
        result = await plain(*args, **kwargs)
        log.append("activity answered")
        return result

    service.respond_activity_task_completed = respond


def test_hello_world_updates_its_run_twice_and_the_activity_is_answered_after_its_write() -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        log: list[Any] = []
        record_writes(env, log)
        record_activity_answers(env, log)
        try:
            async with Worker(
                env.client, task_queue="held", workflows=[HelloWorkflow], activities=[say_hello]
            ):
                result = await env.client.execute_workflow(
                    HelloWorkflow.run, "hi", id="held", task_queue="held"
                )
            assert result == "Hello, hi!"
        finally:
            await env.shutdown()
        writes = [entry for entry in log if entry != "activity answered"]
        # After the start (a create): the first workflow task; the completion with the last one.
        assert len(writes) == 2, writes
        assert writes[1] == [
            *COMPLETION_ALONE,
            E.WORKFLOW_TASK_STARTED,
            E.WORKFLOW_TASK_COMPLETED,
            E.WORKFLOW_EXECUTION_COMPLETED,
        ]
        assert log.index("activity answered") == 2, log  # only after the write carrying it

    asyncio.run(main())


def test_with_no_poller_waiting_the_completion_is_written_at_once() -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        log: list[Any] = []
        record_writes(env, log)
        try:
            async with Worker(env.client, task_queue="alone", workflows=[HelloWorkflow]):
                handle = await env.client.start_workflow(
                    HelloWorkflow.run, "hi", id="alone", task_queue="alone"
                )
                await _wait_for_event(handle, E.ACTIVITY_TASK_SCHEDULED)
            # No workflow worker is polling while the activity completes.
            async with Worker(env.client, task_queue="alone", activities=[say_hello]):
                await _wait_for_event(handle, E.ACTIVITY_TASK_COMPLETED)
            assert log[-1] == COMPLETION_ALONE
            async with Worker(env.client, task_queue="alone", workflows=[HelloWorkflow]):
                assert await asyncio.wait_for(handle.result(), 10) == "Hello, hi!"
        finally:
            await env.shutdown()

    asyncio.run(main())


def test_a_held_completion_whose_workflow_task_stalls_is_written_within_the_bound() -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        log: list[Any] = []
        record_writes(env, log)
        service: Any = env.client.service
        try:
            async with Worker(env.client, task_queue="stall", workflows=[HelloWorkflow]):
                handle = await env.client.start_workflow(
                    HelloWorkflow.run, "hi", id="stall", task_queue="stall"
                )
                await _wait_for_event(handle, E.ACTIVITY_TASK_SCHEDULED)
            # A poller that takes the workflow task and never answers it.
            stalled = asyncio.create_task(service.poll_workflow_task_queue(env.client.namespace, "stall"))
            await asyncio.sleep(0)
            async with Worker(env.client, task_queue="stall", activities=[say_hello]):
                task = await asyncio.wait_for(stalled, 10)
                # The poller saw the completion before it was written...
                types = [e.event_type for e in task.history]
                assert types[-4:] == [*COMPLETION_ALONE, E.WORKFLOW_TASK_STARTED], types
                # ...and it is written within the bound although the workflow task never ends.
                await asyncio.wait_for(_wait_for_event(handle, E.ACTIVITY_TASK_COMPLETED), 10)
            assert log[-1] == COMPLETION_ALONE
        finally:
            await env.shutdown()

    asyncio.run(main())


def test_a_held_completion_lost_with_its_write_runs_the_activity_again_and_records_it_once() -> None:
    runs: list[str] = []

    @activity.defn(name="say_hello")
    async def counting_hello(name: str) -> str:
        runs.append(name)
        return f"Hello, {name}!"

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        executions: Any = env.host.stores.executions
        plain = executions.update_workflow_execution
        failed: list[Any] = []

        async def update(request: Any) -> Any:
            # The write that carries the activity's completion fails once, outright.
            if not failed and any(b"Hello, hi!" in a.node.data for a in request.history):
                failed.append(request)
                raise StoreUnavailableError("injected: the store is unavailable")
            return await plain(request)

        executions.update_workflow_execution = update
        try:
            async with Worker(
                env.client, task_queue="lost", workflows=[HelloWorkflow], activities=[counting_hello]
            ):
                result = await asyncio.wait_for(
                    env.client.execute_workflow(HelloWorkflow.run, "hi", id="lost", task_queue="lost"), 30
                )
            assert result == "Hello, hi!"
            assert failed, "the completion's write was never attempted"
            assert len(runs) == 2, runs  # unacknowledged, so run again
            events = (await env.client.get_workflow_handle("lost").fetch_history()).events
            assert [e.event_type for e in events].count(E.ACTIVITY_TASK_COMPLETED) == 1
        finally:
            await env.shutdown()

    asyncio.run(main())


async def _wait_for_event(handle: Any, event_type: EventType) -> None:
    while not any(e.event_type == event_type for e in (await handle.fetch_history()).events):
        await asyncio.sleep(0.01)


@workflow.defn
class TwoHellos:
    @workflow.run
    async def run(self, name: str) -> list[str]:
        return [
            await workflow.execute_activity(say_hello, f"{name}{i}", start_to_close_timeout=QUICK)
            for i in (1, 2)
        ]


def test_a_stale_history_node_under_a_held_change_is_not_read_as_history() -> None:
    # A write whose outcome was unknown and that did not apply can leave a history node behind (on
    # Cassandra the nodes are written before the conditional batch). Its ids are those of the next
    # events, so they are the ids a held change reserves: reading history up to the held change's
    # ids must not pick it up, or every later workflow task replays a history with duplicates.
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        service: Any = env.client.service
        plain_poll = service.poll_workflow_task_queue
        seen: list[list[int]] = []

        async def poll(*args: Any, **kwargs: Any) -> Any:
            task = await plain_poll(*args, **kwargs)
            if task is not None:
                seen.append([e.event_id for e in task.history])
            return task

        service.poll_workflow_task_queue = poll
        try:
            async with Worker(env.client, task_queue="stale", workflows=[TwoHellos], activities=[say_hello]):
                await env.client.execute_workflow(TwoHellos.run, "x", id="template", task_queue="stale")
            template = (await env.client.get_workflow_handle("template").fetch_history()).events
            async with Worker(env.client, task_queue="stale", workflows=[TwoHellos]):
                handle = await env.client.start_workflow(TwoHellos.run, "hi", id="stale", task_queue="stale")
                await _wait_for_event(handle, E.ACTIVITY_TASK_SCHEDULED)
            history: Any = env.host.history
            ns_id = env.host.frontend.namespaces._by_name["default"].id
            ctx, ms = await history.get_state(ns_id, "stale", "")
            stale = [e for e in template if e.event_id >= ms.next_event_id][:3]
            assert [e.event_type for e in stale] == COMPLETION_ALONE
            node = HistoryNode(stale[0].event_id, 1, encode_events(stale), 3)
            await env.host.stores.history.append_history_nodes(
                HistoryAppend(ms.info.tree_id, ms.info.branch_id, node)
            )
            history.shard(ns_id, "stale").invalidate(ctx)  # as after a failed write: read again
            seen.clear()
            async with Worker(env.client, task_queue="stale", workflows=[TwoHellos], activities=[say_hello]):
                # Waits without reading history, which would cache it before the change is held.
                while (await handle.describe()).status == "RUNNING":
                    await asyncio.sleep(0.01)
            assert await handle.result() == ["Hello, hi1!", "Hello, hi2!"]
            assert seen, "no workflow task after the stale node was planted"
            for ids in seen:
                # The whole history, or (sticky execution) the events after the worker's last task.
                assert ids == list(range(ids[0], ids[0] + len(ids))), f"a workflow task's history: {ids}"
        finally:
            await env.shutdown()

    asyncio.run(main())
