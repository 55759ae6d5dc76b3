"""A start's id conflict policy and start delay, on SQLite and Cassandra.

TERMINATE_EXISTING terminates the running run and starts the new one in one write, so racing
starts never leave two runs running; a start delay is a durable timer that survives a restart of
the engine. The engine's clock is a ``ManualClock``: the delay passes with one ``advance``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cadenza import workflow
from cadenza.common import WorkflowIDConflictPolicy
from cadenza.engine.clock import ManualClock
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.engine.persistence.cassandra import CassandraSession, CassandraStores, setup_schema
from cadenza.exceptions import WorkflowAlreadyStartedError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

QUEUE = "start-policies"
HOUR_S = 3_600


@workflow.defn
class Idle:
    @workflow.run
    async def run(self) -> str:
        return "ran"


@workflow.defn
class Forever:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@pytest.fixture(scope="module")
def cassandra_session(cassandra_contact: tuple[str, int]) -> Iterator[CassandraSession]:
    """A keyspace of this module's own, with the current schema; dropped at the end."""
    host, port = cassandra_contact
    name = f"cadenza_start_{uuid.uuid4().hex[:8]}"
    session = CassandraSession.connect([host], port, name, consistency="ONE", serial_consistency="SERIAL")
    try:
        setup_schema(session, name, replication_factor=1)
        yield session
        session.session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    finally:
        session.close_blocking()


Scenario = Callable[[Callable[[], Awaitable[WorkflowEnvironment]], ManualClock], Awaitable[None]]


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def in_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Scenario], None]:
    """Runs a scenario given a way to start the engine (again, on the same data: a restart) on
    the parametrised backend, with one manual clock throughout."""

    def run(scenario: Scenario) -> None:
        clock = ManualClock()
        started: list[WorkflowEnvironment] = []

        async def start() -> WorkflowEnvironment:
            if request.param == "cassandra":
                session: CassandraSession = request.getfixturevalue("cassandra_session")
                stores: Any = CassandraStores(session, close_session=False)
            else:
                stores = open_sqlite_stores(tmp_path / "history.db")
            env = await WorkflowEnvironment.start_local(clock=clock, stores=stores, visibility=False)
            started.append(env)
            return env

        async def main() -> None:
            try:
                await asyncio.wait_for(scenario(start, clock), 60)
            finally:
                for env in started:
                    if not getattr(env, "stopped", False):
                        await env.shutdown()

        asyncio.run(main())

    return run


async def _stop(env: WorkflowEnvironment) -> None:
    await env.shutdown()
    env.stopped = True  # type: ignore[attr-defined]


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_racing_terminate_existing_starts_leave_exactly_one_run_running(
    in_engine: Callable[[Scenario], None],
) -> None:
    async def scenario(start: Callable[[], Awaitable[WorkflowEnvironment]], clock: ManualClock) -> None:
        env = await start()
        client = env.client
        wid = _id("race")
        first = await client.start_workflow(Forever.run, id=wid, task_queue=QUEUE)
        handles = await asyncio.gather(
            *(
                client.start_workflow(
                    Forever.run,
                    id=wid,
                    task_queue=QUEUE,
                    id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
                )
                for _ in range(6)
            )
        )
        run_ids = {first.first_run_id, *(h.first_run_id for h in handles)}
        assert len(run_ids) == 7  # every start made a run of its own
        statuses = {}
        for run_id in run_ids:
            statuses[run_id] = (await client.get_workflow_handle(wid, run_id=run_id).describe()).status
        running = [r for r, s in statuses.items() if s == "RUNNING"]
        assert len(running) == 1 and sorted(set(statuses.values())) == ["RUNNING", "TERMINATED"]
        assert (await client.get_workflow_handle(wid).describe()).run_id == running[0]

    in_engine(scenario)


def test_use_existing_and_fail_decide_against_the_running_run(in_engine: Callable[[Scenario], None]) -> None:
    async def scenario(start: Callable[[], Awaitable[WorkflowEnvironment]], clock: ManualClock) -> None:
        env = await start()
        client = env.client
        wid = _id("exists")
        first = await client.start_workflow(Forever.run, id=wid, task_queue=QUEUE)
        same = await client.start_workflow(
            Forever.run, id=wid, task_queue=QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
        )
        assert same.first_run_id == first.first_run_id
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                Forever.run, id=wid, task_queue=QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.FAIL
            )
        history = (await first.fetch_history()).events
        assert [e.event_type for e in history] == [
            EventType.WORKFLOW_EXECUTION_STARTED,
            EventType.WORKFLOW_TASK_SCHEDULED,
        ]

    in_engine(scenario)


def test_a_start_delay_is_a_durable_timer_that_survives_a_restart(
    in_engine: Callable[[Scenario], None],
) -> None:
    async def scenario(start: Callable[[], Awaitable[WorkflowEnvironment]], clock: ManualClock) -> None:
        env = await start()
        wid = _id("delay")
        handle = await env.client.start_workflow(
            Idle.run, id=wid, task_queue=QUEUE, start_delay=timedelta(hours=1)
        )
        described = await handle.describe()
        assert described.execution_time == described.start_time + HOUR_S * 1_000_000
        await _stop(env)

        env = await start()  # the same data, a new engine: the timer must come from the store
        handle = env.client.get_workflow_handle(wid)
        async with Worker(env.client, task_queue=QUEUE, workflows=[Idle]):
            clock.advance(HOUR_S - 60)
            await asyncio.sleep(0.2)  # a real moment for a wrongly due timer to fire
            kinds = [e.event_type for e in (await handle.fetch_history()).events]
            assert kinds == [EventType.WORKFLOW_EXECUTION_STARTED]  # not due yet
            clock.advance(61)
            assert await asyncio.wait_for(handle.result(), 40) == "ran"
        scheduled = next(
            e
            for e in (await handle.fetch_history()).events
            if e.event_type == EventType.WORKFLOW_TASK_SCHEDULED
        )
        assert scheduled.event_time >= described.start_time + HOUR_S * 1_000_000

    in_engine(scenario)
