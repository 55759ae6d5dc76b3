"""The whole engine with a spilled activity backlog: a workflow schedules activities that no worker
polls, matching writes them to the store, the server restarts, and when a worker comes every
activity arrives once, in the order it was scheduled, and the workflow completes. On SQLite and on
the real Cassandra."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from persistence.cassandra.support import Keyspace, cassandra_keyspace  # noqa: F401  (fixture)

from cadenza import activity, workflow
from cadenza.engine.matching import ACTIVITY_TASK
from cadenza.engine.matching_backlog import BacklogConfig
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

COUNT = 300


@activity.defn
async def step(index: int) -> None:
    """Never run by a worker here: the test polls the activity tasks itself to see their order."""


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, queue: str, count: int) -> int:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    step,
                    i,
                    task_queue=queue,
                    activity_id=f"{i:05d}",
                    start_to_close_timeout=timedelta(minutes=5),
                )
                for i in range(count)
            )
        )
        return count


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def env_kwargs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], dict[str, Any]]]:
    """Arguments for ``WorkflowEnvironment.start_local``; each call is one server start on the
    same data."""
    if request.param == "sqlite":
        yield lambda: {"db_path": tmp_path / "cadenza.db"}
    else:
        ks: Keyspace = request.getfixturevalue("cassandra_keyspace")
        yield lambda: {"stores": ks.stores()}


def test_a_spilled_activity_backlog_survives_a_restart_and_drains_in_order(
    env_kwargs: Callable[[], dict[str, Any]],
) -> None:
    asyncio.run(asyncio.wait_for(_spilled_backlog(env_kwargs), 120))


async def _spilled_backlog(env_kwargs: Callable[[], dict[str, Any]]) -> None:
    suffix = uuid.uuid4().hex[:10]
    wf_queue, act_queue = f"fan-out-{suffix}", f"steps-{suffix}"
    config = BacklogConfig(spill_after_s=3600, max_in_memory=40, write_batch=25, read_batch=30)

    env = await WorkflowEnvironment.start_local(visibility=False, **env_kwargs())
    try:
        env.host.matching.config = config
        ns_id = (await env.host.namespaces.get(env.client.namespace)).id
        async with Worker(env.client, task_queue=wf_queue, workflows=[FanOut]):
            handle = await env.client.start_workflow(
                FanOut.run, act_queue, COUNT, id=f"fan-out-{suffix}", task_queue=wf_queue
            )
            q = env.host.matching.queue(ns_id, act_queue, ACTIVITY_TASK)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not (
                q.backlog and q.backlog.written >= COUNT - config.max_in_memory and not q.backlog.spilling
            ):
                assert loop.time() < deadline, "the activity backlog was not written"
                await asyncio.sleep(0.005)
            assert q.held_in_memory() <= config.max_in_memory + config.read_batch
    finally:
        await env.shutdown()

    # A new server on the same store: the backlog is read back first, then what the shards'
    # transfer queues offer again (the tasks that were still only in memory).
    env = await WorkflowEnvironment.start_local(visibility=False, **env_kwargs())
    try:
        frontend = env.host.frontend
        namespace = env.client.namespace
        delivered: list[str] = []
        while len(delivered) < COUNT:
            task = await frontend.poll_activity_task_queue(namespace, act_queue, identity="test", timeout_s=5)
            assert task is not None, f"only {len(delivered)} of {COUNT} activities were delivered"
            delivered.append(task.activity_id)
            await frontend.respond_activity_task_completed(task.task_token, None, identity="test")
        assert delivered == [f"{i:05d}" for i in range(COUNT)]
        async with Worker(env.client, task_queue=wf_queue, workflows=[FanOut]):
            handle = env.client.get_workflow_handle(f"fan-out-{suffix}")
            assert await handle.result() == COUNT
        # Nothing else is left to deliver (no duplicate of a started activity got through).
        extra = await frontend.poll_activity_task_queue(namespace, act_queue, identity="test", timeout_s=0.2)
        assert extra is None
    finally:
        await env.shutdown()
