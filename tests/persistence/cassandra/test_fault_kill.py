"""Cassandra killed with SIGKILL in the middle of a load run, then restarted on the same data.

While it is down, requests fail with errors that say Cassandra is unreachable (or wait); once it is
back, every workflow whose start was acknowledged completes.

The test runs its own Cassandra node (the jars and launch command of `cadenza dev services`, on other
ports, in a temporary directory) instead of killing the shared development node, for two reasons:

* `cadenza dev services up` starts a server on a fresh, empty run directory, so restarting the shared
  node with it cannot show that acknowledged writes survive;
* the development node syncs its commit log every 10 s (``commitlog_sync: periodic``): a SIGKILL loses
  the writes since the last sync, acknowledged or not. This node uses ``commitlog_sync: group``, which
  syncs before acknowledging, as a single-replica deployment must.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cadenza.engine.persistence.cassandra import (
    CassandraSession,
    CassandraStores,
    open_cassandra_stores,
    setup_schema,
)
from cadenza.ops.devservices import resolve
from cadenza.ops.devservices.services import Cassandra
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker
from tests.stuck_runs import log_of, server_view

from .workflows import Collector, echo, expected_result

pytestmark = [pytest.mark.cassandra, pytest.mark.slow]

QUEUE = "fault"
KILL_AFTER_S = 2.0
START_EVERY_S = 0.02
PORT, STORAGE_PORT = 19142, 17100
KEYSPACE = "cadenza_fault"


@dataclass
class PrivateNode:
    service: Cassandra
    command: list[str]
    run_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, deadline_s: float = 180.0) -> None:
        with (self.run_dir / "service.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.command, cwd=self.run_dir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        end = time.monotonic() + deadline_s
        while not self.service.probe():
            assert self.proc.poll() is None, f"Cassandra exited; see {self.run_dir / 'service.log'}"
            assert time.monotonic() < end, f"Cassandra did not answer; see {self.run_dir / 'service.log'}"
            time.sleep(1.0)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def node(cassandra_contact: tuple[str, int], tmp_path: Path) -> Iterator[PrivateNode]:
    # cassandra_contact: the development node answers, so its jars are resolved in the cache.
    service = Cassandra(port=PORT, extra_ports={"storage": STORAGE_PORT})
    dist = resolve.resolve("cassandra", home=resolve.cache_home(), arrange=service.arrange)
    run_dir = tmp_path / "cassandra"
    run_dir.mkdir()
    command = service.prepare(dist, run_dir)
    yaml = run_dir / "conf" / "cassandra.yaml"
    text = yaml.read_text()
    assert "commitlog_sync: periodic" in text
    text = text.replace("commitlog_sync: periodic", "commitlog_sync: group\ncommitlog_sync_group_window: 5ms")
    yaml.write_text("\n".join(line for line in text.splitlines() if "commitlog_sync_period" not in line))
    private = PrivateNode(service, command, run_dir)
    private.start()
    try:
        db = CassandraSession.connect(
            ["127.0.0.1"], PORT, KEYSPACE, consistency="ONE", serial_consistency="SERIAL"
        )
        setup_schema(db, KEYSPACE)
        db.close_blocking()
        yield private
    finally:
        private.stop()


async def _wait_all(env: WorkflowEnvironment, ids: list[str], timeout: float) -> list[str]:
    """Waits for every workflow's result; returns those still open (or wrong) after ``timeout``.
    Errors (the driver may still be reconnecting) are retried until the deadline."""
    deadline = time.monotonic() + timeout

    async def one(wid: str) -> str | None:
        while (left := deadline - time.monotonic()) > 0:
            try:
                result = await env.client.get_workflow_handle(wid).result(timeout=left)
            except Exception:
                await asyncio.sleep(0.5)
                continue
            return None if result == expected_result([]) else wid
        return wid

    return [w for w in await asyncio.gather(*(one(w) for w in ids)) if w is not None]


async def _last_events(env: WorkflowEnvironment, ids: list[str]) -> dict[str, list[str]]:
    out = {}
    for wid in ids[:5]:
        events = (await env.client.get_workflow_handle(wid).fetch_history()).events
        out[wid] = [EventType(e.event_type).name for e in events[-3:]]
        out[wid].append(await server_view(env, wid))
    return out


def test_sigkill_and_restart_mid_load_loses_no_acknowledged_workflow(
    node: PrivateNode, caplog: pytest.LogCaptureFixture
) -> None:
    # The engine's and the worker's lines about a stuck run go into the failure message.
    caplog.set_level(logging.INFO, logger="cadenza")
    acknowledged: list[str] = []
    errors: list[str] = []
    waited: list[str] = []
    stuck: dict[str, list[str]] = {}

    def stores() -> CassandraStores:
        return open_cassandra_stores(
            ["127.0.0.1"], PORT, KEYSPACE, consistency="ONE", serial_consistency="SERIAL"
        )

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(stores=stores())
        try:
            async with Worker(env.client, task_queue=QUEUE, workflows=[Collector], activities=[echo]):

                async def start_one(wid: str) -> None:
                    try:
                        await asyncio.wait_for(
                            env.client.start_workflow(Collector.run, 0, id=wid, task_queue=QUEUE), 30
                        )
                        acknowledged.append(wid)
                    except TimeoutError:
                        waited.append(wid)  # still waiting for the store when we gave up: allowed
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")

                began = time.monotonic()
                starts: list[asyncio.Task[None]] = []
                killed = restarted = False
                restart: asyncio.Future[None] | None = None
                while not restarted:
                    starts.append(asyncio.create_task(start_one(f"fault-{uuid.uuid4().hex[:8]}")))
                    await asyncio.sleep(START_EVERY_S)
                    if not killed and time.monotonic() - began > KILL_AFTER_S:
                        node.kill()
                        killed = True
                        await asyncio.sleep(3)  # requests meet a dead node for a while
                        restart = asyncio.get_running_loop().run_in_executor(None, node.start)
                    restarted = restart is not None and restart.done()
                assert restart is not None
                await restart
                await asyncio.gather(*starts)
                # The same engine, without a restart: nothing it acknowledged may wait for one
                # (a sticky task that fell back twice once waited in a queue nobody polls).
                still = await _wait_all(env, acknowledged, 60)
                if still:
                    stuck.update(await _last_events(env, still))
                    stuck["count"] = [str(len(still))]
                    for wid in still[:2]:
                        stuck[f"log of {wid}"] = log_of(caplog.records, wid)
        finally:
            await env.shutdown()

    asyncio.run(main())
    assert len(acknowledged) > 20, f"only {len(acknowledged)} starts were acknowledged"
    assert errors, "no request failed while Cassandra was down: the kill did not bite"
    unclear = [e for e in errors if "Cassandra" not in e and "unavailable" not in e.lower()]
    assert not unclear, f"errors that do not say what is wrong: {sorted(set(unclear))[:5]}"
    assert not stuck, f"acknowledged workflows that never completed (last events of up to five): {stuck}"
