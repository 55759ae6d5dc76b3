"""Every write acknowledged before a SIGKILL is in the file after reopening it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cadenza.engine.persistence import EntityNotFoundError, open_sqlite_stores

from .aio import run

WRITER = Path(__file__).with_name("durability_writer.py")
ACKS_BEFORE_KILL = 2000
DEADLINE_S = 8.0


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked: dict[str, int] = {}
    deadline = time.monotonic() + DEADLINE_S
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        while len(acked) < ACKS_BEFORE_KILL and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            _, wf, version = line.split()
            acked[wf] = max(acked.get(wf, 0), int(version))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    # Lines already in the pipe were acknowledged before the kill too.
    for line in proc.stdout.read().splitlines():
        if line.startswith("ack "):
            _, wf, version = line.split()
            acked[wf] = max(acked.get(wf, 0), int(version))
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 50, "the writer acknowledged too little to prove anything"

    async def check() -> None:
        stores = open_sqlite_stores(path)
        try:
            missing: list[str] = []
            for wf, version in acked.items():
                try:
                    row = await stores.executions.get_workflow_execution(1, "durability", wf, f"run-{wf}")
                except EntityNotFoundError:
                    missing.append(wf)
                    continue
                assert row.db_version >= version, wf
                nodes, _ = await stores.history.read_history_branch(
                    f"run-{wf}", f"run-{wf}", min_node_id=1, max_node_id=10, page_size=10
                )
                assert len(nodes) >= version, wf
            assert not missing, f"{len(missing)} acknowledged workflows lost, e.g. {missing[:3]}"
        finally:
            await stores.close()

    run(check())
