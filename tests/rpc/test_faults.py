"""Faults across processes: a worker killed mid-task, a dev server killed under load."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cadenza.client import Client
from cadenza.engine.rpc import RpcServer
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from . import fault_app
from .devserver import DevServer, env


def _spawn_worker(address: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rpc.fault_app", address, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env(),
    )


async def _wait_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    while True:
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line, f"worker exited early with {proc.poll()}"
        if line.startswith(prefix):
            return line


def test_a_worker_killed_mid_activity_has_its_task_retried_after_the_timeout() -> None:
    async def main() -> None:
        env_ = await WorkflowEnvironment.start_local()
        server = RpcServer(env_.host.frontend)
        address = f"127.0.0.1:{await server.start('127.0.0.1', 0)}"
        client = await Client.connect(address)
        remote = _spawn_worker(address, "hang")
        try:
            await _wait_line(remote, "READY")
            # Workflow tasks run here; the activity can only go to the remote process.
            async with Worker(client, task_queue=fault_app.QUEUE, workflows=[fault_app.FragileWorkflow]):
                handle = await client.start_workflow(
                    fault_app.FragileWorkflow.run, "clip", id="fragile", task_queue=fault_app.QUEUE
                )
                assert (await _wait_line(remote, "STARTED")).split() == ["STARTED", "fragile", "fragile", "1"]
                os.kill(remote.pid, signal.SIGKILL)
                remote.wait()
                async with Worker(client, task_queue=fault_app.QUEUE, activities=[fault_app.fragile_step]):
                    assert await asyncio.wait_for(handle.result(), 30) == "clip done on attempt 2"
                events = (await handle.fetch_history()).events
        finally:
            if remote.poll() is None:
                remote.kill()
            await client.service.close()  # type: ignore[attr-defined]
            await server.stop(0)
            await env_.shutdown()
        started = next(e for e in events if e.event_type == EventType.ACTIVITY_TASK_STARTED)
        assert started.attributes["attempt"] == 2
        assert started.attributes["last_failure"]["timeout_type"] == "START_TO_CLOSE"

    asyncio.run(main())


@pytest.mark.slow
def test_kill9_of_the_dev_server_under_load_loses_no_acknowledged_workflow(tmp_path: Path) -> None:
    db = tmp_path / "cadenza.db"
    server = DevServer(["--db-filename", str(db)]).start()
    worker = _spawn_worker(server.address, "worker")
    acked: list[str] = []

    async def load() -> None:
        client = await Client.connect(server.address, retries=0)
        sem = asyncio.Semaphore(50)

        async def start(i: int) -> None:
            async with sem:
                wid = f"load-{i}"
                try:
                    await client.start_workflow(
                        fault_app.ThreeSteps.run, wid, id=wid, task_queue=fault_app.QUEUE
                    )
                except Exception:
                    return  # not acknowledged: the server died first
                acked.append(wid)

        tasks = [asyncio.create_task(start(i)) for i in range(400)]
        while len(acked) < 150:
            await asyncio.sleep(0.005)
        server.kill9()  # mid-load: starts in flight, activities running, tasks queued
        await asyncio.gather(*tasks)
        await client.service.close()  # type: ignore[attr-defined]

    try:
        asyncio.run(_with_worker_ready(worker, load()))
        assert 150 <= len(acked) < 400
        restarted = DevServer(["--db-filename", str(db)]).start(port=server.port)

        async def verify() -> None:
            client = await Client.connect(restarted.address, retries=10)
            results = await asyncio.wait_for(
                asyncio.gather(*(client.get_workflow_handle(w).result() for w in acked)), 120
            )
            for wid, result in zip(acked, results, strict=True):
                assert result == [f"{wid}:{i}" for i in range(3)]
            await client.service.close()  # type: ignore[attr-defined]

        started = time.monotonic()
        asyncio.run(verify())
        assert time.monotonic() - started < 120
        assert restarted.stop() == 0, restarted.stderr()[-3000:]
    finally:
        worker.kill()
        worker.wait()
        if server.proc and server.proc.poll() is None:
            server.kill9()


async def _with_worker_ready(worker: subprocess.Popen[str], then: object) -> None:
    await _wait_line(worker, "READY")
    await then  # type: ignore[misc]
