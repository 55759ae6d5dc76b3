"""SIGTERM on a real server process under load: it exits 0 within its drain timeout, having handed
its shards over, and after a restart every workflow whose start was acknowledged completes with
the history an uninterrupted run has (nothing lost, nothing twice), an activity completion
acknowledged before the stop is in it, and a worker given two addresses reconnects after the
restart. A second SIGTERM during a stop exits at once.

On `server start-dev` with a SQLite file, and on `server start --config` with the dev services'
Cassandra (the drain timeout then comes from the config's ``global.shutdown.drainTimeout``)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from persistence.cassandra.support import make_keyspace

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.engine.persistence.protocols import Stores
from cadenza.schemas.events import EventType
from cadenza.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "graceful-stop"
DRAIN_S = 5.0
NUM_SHARDS = 4
RETRIES = 20
_READY = re.compile(r"serving on (\S+):(\d+)")
_STOPPED = re.compile(r"stopped in ([0-9.]+) s \(calls drained in ([0-9.]+) s")


@activity.defn
async def step(label: str) -> str:
    await asyncio.sleep(0.02)  # long enough for some to be running when the stop comes
    return label.upper()


PARKED: dict[str, bytes] = {}
"""Task tokens of ``park`` activities, by the key they were given: completed by the test."""


@activity.defn
async def park(key: str) -> str:
    PARKED[key] = activity.info().task_token
    activity.raise_complete_async()


@workflow.defn
class Pipeline:
    @workflow.run
    async def run(self, name: str) -> list[str]:
        out = []
        for i in range(3):
            out.append(
                await workflow.execute_activity(
                    step, f"{name}-{i}", start_to_close_timeout=timedelta(seconds=10)
                )
            )
        return out


@workflow.defn
class Parked:
    @workflow.run
    async def run(self, key: str) -> str:
        return str(await workflow.execute_activity(park, key, start_to_close_timeout=timedelta(minutes=5)))


# Without the workflow task events (a stop may time one out, which is retried): what every
# Pipeline run's history must be, as an uninterrupted run writes it.
PIPELINE_SHAPE = [
    EventType.WORKFLOW_EXECUTION_STARTED,
    *[EventType.ACTIVITY_TASK_SCHEDULED, EventType.ACTIVITY_TASK_STARTED, EventType.ACTIVITY_TASK_COMPLETED]
    * 3,
    EventType.WORKFLOW_EXECUTION_COMPLETED,
]
_WORKFLOW_TASK_EVENTS = {
    EventType.WORKFLOW_TASK_SCHEDULED,
    EventType.WORKFLOW_TASK_STARTED,
    EventType.WORKFLOW_TASK_COMPLETED,
    EventType.WORKFLOW_TASK_TIMED_OUT,
    EventType.WORKFLOW_TASK_FAILED,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerRun:
    """One `cadenza server ...` process (restartable on the same port and data)."""

    args: Sequence[str]
    port: int
    proc: subprocess.Popen[str] | None = None
    stopped_line: str = ""
    log: Any = field(default_factory=lambda: tempfile.TemporaryFile(mode="w+"))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerRun:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cadenza", "server", *self.args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not _READY.search(line):
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(f"server did not start: {line!r}\n{self.stderr()[-3000:]}")
        return self

    def terminate_and_wait(self, timeout: float) -> tuple[int, float]:
        """SIGTERM, then the exit status and the seconds until the process was gone."""
        assert self.proc is not None and self.proc.stdout is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        took = time.monotonic() - started
        self.stopped_line = self.proc.stdout.read()
        return code, took

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stderr(self) -> str:
        self.log.seek(0)
        return str(self.log.read())


async def _until(cond: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _result(
    client: Client, workflow_id: str, timeout: float = 60.0, server: ServerRun | None = None
) -> Any:
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        events = (await handle.fetch_history()).events
        pending = (await handle.describe()).pending_activities
        log = server.stderr()[-4000:] if server is not None else ""
        raise AssertionError(
            f"{workflow_id} still open after {timeout:g} s: {[EventType(e.event_type).name for e in events]}"
            f"\npending activities: {pending}\nserver log:\n{log}"
        ) from None


async def _check_history(client: Client, workflow_id: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    ids = [e.event_id for e in history.events]
    assert ids == list(range(1, len(ids) + 1)), f"{workflow_id}: event ids {ids}"
    shape = [EventType(e.event_type) for e in history.events if e.event_type not in _WORKFLOW_TASK_EVENTS]
    assert shape == PIPELINE_SHAPE, f"{workflow_id}: {[t.name for t in shape]}"


async def _stop_under_load(server: ServerRun, open_stores: Callable[[], Stores]) -> float:
    """The scenario; returns the seconds from SIGTERM to the process's exit."""
    # Retries of UNAVAILABLE enough to span a restart (the default gives up after about 2 s).
    client = await Client.connect(server.address, retries=RETRIES)
    starter_client = await Client.connect(server.address)  # gives up on a start while the server is down
    # Two addresses of the one frontend there is (a second frontend of the same cluster needs the
    # roles as processes): the worker polls both, and finds the server on both after the restart.
    targets = [server.address, f"localhost:{server.port}"]
    worker_client = await Client.connect(targets, retries=RETRIES)
    acknowledged: list[str] = []
    starting = True

    async def starter(k: int) -> None:
        i = 0
        while starting:
            wid = f"load-{k}-{i}"
            i += 1
            try:
                await starter_client.start_workflow(Pipeline.run, wid, id=wid, task_queue=QUEUE)
            except Exception:  # refused while the server stops; not acknowledged, not counted
                await asyncio.sleep(0.1)
                continue
            acknowledged.append(wid)

    async with Worker(worker_client, task_queue=QUEUE, workflows=[Pipeline, Parked], activities=[step, park]):
        await client.start_workflow(Parked.run, "parked", id="parked", task_queue=QUEUE)
        starters = [asyncio.create_task(starter(k)) for k in range(3)]
        await _until(lambda: "parked" in PARKED and len(acknowledged) >= 40, "load to build up")

        # Acknowledged just before the stop: it must be in the history after the restart.
        await client.get_async_activity_handle(task_token=PARKED["parked"]).complete(
            "completed before the stop"
        )
        code, took = await asyncio.to_thread(server.terminate_and_wait, DRAIN_S + 20)
        assert code == 0, server.stderr()[-3000:]
        assert _STOPPED.search(server.stopped_line), server.stopped_line
        assert "Traceback" not in server.stderr(), server.stderr()[-3000:]

        starting = False
        await asyncio.gather(*starters)

        # Handed over: every shard's row names no owner (the next acquire moves its range on).
        stores = open_stores()
        try:
            owners = [(await stores.shards.get_shard(i)).owner for i in range(NUM_SHARDS)]
        finally:
            await stores.close()
        assert owners == [""] * NUM_SHARDS

        await asyncio.to_thread(server.start)
        for wid in acknowledged:
            assert await _result(client, wid, server=server) == [f"{wid}-{i}".upper() for i in range(3)]
            await _check_history(client, wid)
        assert await _result(client, "parked", server=server) == "completed before the stop"
    return took


def _run(scenario: Awaitable[float]) -> float:
    async def main() -> float:
        return await asyncio.wait_for(scenario, 300)

    return asyncio.run(main())


def test_sigterm_under_load_on_sqlite_exits_0_and_loses_nothing(tmp_path: Path) -> None:
    PARKED.clear()
    db = tmp_path / "cadenza.db"
    dev = ["start-dev", "--headless", "--num-shards", str(NUM_SHARDS), "--drain-timeout", f"{DRAIN_S:g}s"]
    port = _free_port()
    server = ServerRun([*dev, "--port", str(port), "-f", str(db)], port)
    try:
        server.start()
        took = _run(_stop_under_load(server, lambda: open_sqlite_stores(db)))
        print(f"start-dev on SQLite: SIGTERM to exit {took:.2f} s ({server.stopped_line.strip()})")
        assert took < DRAIN_S + 10
    finally:
        server.kill()


CONFIG = """
global:
  shutdown:
    drainTimeout: {drain}
persistence:
  numHistoryShards: {shards}
  defaultStore: cass
  datastores:
    cass:
      cassandra:
        hosts: "{host}"
        port: {port}
        keyspace: {keyspace}
        consistency: ONE
        serialConsistency: SERIAL
services:
  frontend:
    rpc:
      grpcPort: {grpc_port}
      bindOnIP: 127.0.0.1
"""


@pytest.mark.cassandra
def test_sigterm_under_load_on_cassandra_exits_0_and_loses_nothing(
    tmp_path: Path, cassandra_contact: tuple[str, int]
) -> None:
    PARKED.clear()
    keyspaces = make_keyspace(cassandra_contact, prefix="cadenza_stop")
    ks = next(keyspaces)
    port = _free_port()
    config = tmp_path / "server.yaml"
    config.write_text(
        CONFIG.format(
            drain=f"{DRAIN_S:g}s",
            shards=NUM_SHARDS,
            host=ks.host,
            port=ks.port,
            keyspace=ks.name,
            grpc_port=port,
        )
    )
    server = ServerRun(["start", "--config", str(config), "--log-level", "info"], port)
    try:
        server.start()
        took = _run(_stop_under_load(server, ks.stores))
        print(f"start --config on Cassandra: SIGTERM to exit {took:.2f} s ({server.stopped_line.strip()})")
        assert took < DRAIN_S + 10
    finally:
        server.kill()
        next(keyspaces, None)  # drops the keyspace


def test_a_second_sigterm_during_the_stop_exits_at_once_and_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cadenza.db"
    port = _free_port()
    # A long drain timeout: the query below keeps a call in flight, so the first stop waits.
    server = ServerRun(
        [
            "start-dev",
            "--headless",
            "--port",
            str(port),
            "-f",
            str(db),
            "--drain-timeout",
            "60s",
            "--log-level",
            "info",
        ],
        port,
    )

    async def main() -> None:
        client = await Client.connect(server.address, retries=RETRIES)
        started = [f"kept-{i}" for i in range(5)]
        for wid in started:
            await client.start_workflow(Pipeline.run, wid, id=wid, task_queue=QUEUE)
        # No worker yet: the query waits for a first workflow task, in flight through the stop.
        query = asyncio.create_task(client.get_workflow_handle("kept-0").query("anything"))
        await asyncio.sleep(0.5)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        await _until(lambda: "shutting down" in server.stderr(), "the graceful stop to begin")
        begun = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.proc.wait, 30)
        assert code == 128 + signal.SIGTERM, server.stderr()[-3000:]
        assert time.monotonic() - begun < 10  # not the 60 s drain
        assert "exiting at once" in server.stderr()
        query.cancel()
        await asyncio.gather(query, return_exceptions=True)

        await asyncio.to_thread(server.start)
        async with Worker(client, task_queue=QUEUE, workflows=[Pipeline], activities=[step]):
            for wid in started:
                assert await _result(client, wid) == [f"{wid}-{i}".upper() for i in range(3)]
                await _check_history(client, wid)

    try:
        server.start()
        asyncio.run(asyncio.wait_for(main(), 180))
    finally:
        server.kill()
