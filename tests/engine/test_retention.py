"""Retention: a closed run is archived (when its namespace archives) and deleted from history,
executions and visibility once its namespace's retention has passed; on SQLite and Cassandra.

The engine's clock is a ``ManualClock``: the retention of days passes with one ``advance``.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cadenza import workflow
from cadenza.client import Client
from cadenza.engine.archival import ArchivalSettings, ProviderSettings
from cadenza.engine.clock import ManualClock
from cadenza.engine.errors import WorkflowNotFoundError
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.engine.persistence.cassandra import CassandraSession, CassandraStores, setup_schema
from cadenza.engine.persistence.errors import EntityNotFoundError
from cadenza.schemas.service import NamespaceInfo
from cadenza.sdk._local import local_service
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

T = TypeVar("T")
DAY_S = 86_400


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"Hello, {name}!"


@workflow.defn
class Waits:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def eventually(fn: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str) -> T:
    """Waits (a real-time poll, not a clock) for the engine's background work to show."""
    for _ in range(1200):  # 30 s: a bound against hangs, not a speed check (Cassandra under load)
        value = await fn()
        if ok(value):
            return value
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}; last: {value!r}")


@pytest.fixture(scope="module")
def cassandra_session(cassandra_contact: tuple[str, int]) -> Iterator[CassandraSession]:
    """A keyspace of this module's own, with the current schema; dropped at the end."""
    host, port = cassandra_contact
    name = f"cadenza_retention_{uuid.uuid4().hex[:8]}"
    session = CassandraSession.connect([host], port, name, consistency="ONE", serial_consistency="SERIAL")
    try:
        setup_schema(session, name, replication_factor=1)
        yield session
        session.session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    finally:
        session.close_blocking()


Scenario = Callable[[WorkflowEnvironment], Awaitable[None]]


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def in_env(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Scenario], None]:
    """Runs a scenario on a fresh engine (the parametrised backend, a manual clock, archival
    enabled on the cluster with modes unlike any umask's)."""

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            if request.param == "cassandra":
                session: CassandraSession = request.getfixturevalue("cassandra_session")
                stores: Any = CassandraStores(session, close_session=False)
            else:
                stores = open_sqlite_stores(":memory:")
            provider = ProviderSettings(enabled=True, enable_read=True, file_mode=0o640, dir_mode=0o750)
            settings = ArchivalSettings(history=provider, visibility=provider)
            env = await WorkflowEnvironment.start_local(clock=ManualClock(), stores=stores, archival=settings)
            env.tmp = tmp_path  # type: ignore[attr-defined]
            try:
                await asyncio.wait_for(scenario(env), 60)
            finally:
                await env.shutdown()

        asyncio.run(main())

    return run


async def namespace(env: WorkflowEnvironment, *, archives: bool) -> tuple[Client, NamespaceInfo]:
    tmp: Path = env.tmp  # type: ignore[attr-defined]
    name = f"ns-{uuid.uuid4().hex[:8]}"
    info = NamespaceInfo(name=name, id="", retention_days=1)
    if archives:
        info.history_archival_state = info.visibility_archival_state = "enabled"
        info.history_archival_uri = f"file://{tmp}/history"
        info.visibility_archival_uri = f"file://{tmp}/visibility"
    await env.host.frontend.register_namespace(info)
    info = await env.host.namespaces.get(name)
    return Client(local_service(env.host.frontend), namespace=name), info


async def run_hello(client: Client, workflow_id: str) -> str:
    async with Worker(client, task_queue="tq", workflows=[Hello]):
        handle = await client.start_workflow(Hello.run, "world", id=workflow_id, task_queue="tq")
        assert await handle.result() == "Hello, world!"
    return handle.first_run_id or ""


async def listed(env: WorkflowEnvironment, ns: str, query: str = "") -> list[str]:
    page = await env.host.frontend.list_workflow_executions(ns, query)
    return [e.run_id for e in page.executions]


async def gone(env: WorkflowEnvironment, info: NamespaceInfo, wid: str, rid: str) -> bool:
    shard = env.host.history.shard(info.id, wid)
    try:
        await env.host.stores.executions.get_workflow_execution(shard.shard_id, info.id, wid, rid)
    except EntityNotFoundError:
        return True
    return False


def test_a_run_archived_after_retention_is_readable_with_archived(in_env: Callable[[Scenario], None]) -> None:
    in_env(_a_run_archived_after_retention_is_readable_with_archived)


async def _a_run_archived_after_retention_is_readable_with_archived(env: WorkflowEnvironment) -> None:
    clock: ManualClock = env.clock  # type: ignore[assignment]
    client, info = await namespace(env, archives=True)
    rid = await run_hello(client, "hello-1")
    await eventually(lambda: listed(env, info.name), lambda ids: ids == [rid], "the close record")
    shard = env.host.history.shard(info.id, "hello-1")
    assert await env.host.stores.executions.get_workflow_execution(shard.shard_id, info.id, "hello-1", rid)
    tree_id = (await env.host.history.get_state(info.id, "hello-1", rid))[1].info.tree_id
    clock.advance(DAY_S - 60)  # not yet
    await asyncio.sleep(0.1)
    assert not await gone(env, info, "hello-1", rid)

    clock.advance(61)
    await eventually(lambda: gone(env, info, "hello-1", rid), bool, "the run's deletion")
    with pytest.raises(EntityNotFoundError):
        await env.host.stores.executions.get_current_execution(shard.shard_id, info.id, "hello-1")
    # The branches go last (the row first, so a retry still knows the tree): wait for them too.
    await eventually(lambda: env.host.stores.history.get_history_tree(tree_id), lambda b: b == [], "the tree")
    await eventually(lambda: listed(env, info.name), lambda ids: ids == [], "the record's deletion")

    events = await env.host.frontend.get_archived_workflow_history(info.name, "hello-1", rid)
    assert events[0].event_type.pascal_name == "WorkflowExecutionStarted"
    assert events[-1].event_type.pascal_name == "WorkflowExecutionCompleted"
    page = await env.host.frontend.list_archived_workflow_executions(info.name, "WorkflowType = 'Hello'")
    assert [(e.workflow_id, e.run_id, e.status) for e in page.executions] == [("hello-1", rid, "Completed")]
    none = await env.host.frontend.list_archived_workflow_executions(info.name, "WorkflowType = 'Other'")
    assert none.executions == []

    # The configured modes, whatever the umask.
    tmp: Path = env.tmp  # type: ignore[attr-defined]
    files = [p for p in (tmp / "history").rglob("*") if p.is_file()]
    assert len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(files[0].parent).st_mode) == 0o750


def test_without_archival_retention_just_deletes(in_env: Callable[[Scenario], None]) -> None:
    in_env(_without_archival_retention_just_deletes)


async def _without_archival_retention_just_deletes(env: WorkflowEnvironment) -> None:
    clock: ManualClock = env.clock  # type: ignore[assignment]
    client, info = await namespace(env, archives=False)
    rid = await run_hello(client, "plain")
    clock.advance(DAY_S + 1)
    await eventually(lambda: gone(env, info, "plain", rid), bool, "the run's deletion")
    await eventually(lambda: listed(env, info.name), lambda ids: ids == [], "the record's deletion")
    tmp: Path = env.tmp  # type: ignore[attr-defined]
    assert not (tmp / "history").exists() and not (tmp / "visibility").exists()
    with pytest.raises(Exception, match="does not archive"):
        await env.host.frontend.get_archived_workflow_history(info.name, "plain", rid)


def test_an_open_run_is_never_deleted_and_a_reused_id_keeps_its_newer_run(
    in_env: Callable[[Scenario], None],
) -> None:
    in_env(_an_open_run_is_never_deleted_and_a_reused_id_keeps_its_newer_run)


async def _an_open_run_is_never_deleted_and_a_reused_id_keeps_its_newer_run(env: WorkflowEnvironment) -> None:
    clock: ManualClock = env.clock  # type: ignore[assignment]
    client, info = await namespace(env, archives=False)
    first = await run_hello(client, "reused")
    async with Worker(client, task_queue="tq", workflows=[Waits]):
        newer = await client.start_workflow(Waits.run, id="reused", task_queue="tq")
        await eventually(
            lambda: env.host.history.get_state(info.id, "reused", newer.first_run_id or ""),
            lambda s: s[1].info.last_completed_workflow_task_event_id > 0,
            "the newer run's first task",
        )
    clock.advance(10 * DAY_S)
    await eventually(lambda: gone(env, info, "reused", first), bool, "the old run's deletion")
    shard = env.host.history.shard(info.id, "reused")
    current = await env.host.stores.executions.get_current_execution(shard.shard_id, info.id, "reused")
    assert current.run_id == newer.first_run_id
    assert not await gone(env, info, "reused", newer.first_run_id or "")
    described = await newer.describe()
    assert described.status.name == "RUNNING"
    with pytest.raises(WorkflowNotFoundError):
        await env.host.history.get_state(info.id, "reused", first)
