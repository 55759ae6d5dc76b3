"""Kill -9 of a file-backed server with 200 workflows in flight loses nothing that was acknowledged."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cadenza.engine.history.mutable_state import decode_state
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.schemas.codec import decode_events
from cadenza.schemas.events import EventType

APP = Path(__file__).with_name("durability_app.py")
ROOT = Path(__file__).resolve().parents[2]


def _histories(db: Path) -> dict[str, list]:  # type: ignore[type-arg]
    """Every run's history, read straight from the store (no server, so nothing moves)."""

    async def read() -> dict[str, list]:  # type: ignore[type-arg]
        stores = open_sqlite_stores(str(db))
        out: dict[str, list] = {}  # type: ignore[type-arg]
        try:
            for shard_id in range(4):
                token = None
                while True:
                    rows, token = await stores.executions.list_executions(shard_id, 500, token)
                    for row in rows:
                        ms = decode_state(row.data)
                        nodes, _ = await stores.history.read_history_branch(
                            ms.info.tree_id,
                            ms.info.branch_id,
                            min_node_id=1,
                            max_node_id=1 << 40,
                            page_size=100_000,
                        )
                        out[row.workflow_id] = [e for n in nodes for e in decode_events(n.data)]
                    if not token:
                        break
        finally:
            await stores.close()
        return out

    return asyncio.run(read())


def _completed_steps(events: list) -> list[str]:  # type: ignore[type-arg]
    by_scheduled = {e.event_id: e for e in events if e.event_type == EventType.ACTIVITY_TASK_SCHEDULED}
    done = []
    for e in events:
        if e.event_type == EventType.ACTIVITY_TASK_COMPLETED:
            sched = by_scheduled[e.attributes["scheduled_event_id"]]
            done.append(sched.attributes["input"][1]["data"].decode())
    return done


@pytest.mark.slow
def test_sigkill_with_200_workflows_in_flight_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db, log, acked_file = tmp_path / "cadenza.db", tmp_path / "activities.log", tmp_path / "acked.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(APP), str(db), str(log), "start", "200"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked: list[str] = []
    assert proc.stdout is not None
    while len(acked) < 200:
        line = proc.stdout.readline()
        assert line, f"server exited early with {proc.wait()}"
        if line.startswith("ACK "):
            acked.append(line.split()[1])
    # Let some activities run, but not all: 600 steps take far longer than this.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("\n") >= 150:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    before = _histories(db)
    assert set(acked) <= set(before), "an acknowledged start was lost"
    recorded_before = {(wid, s) for wid, ev in before.items() for s in _completed_steps(ev)}
    assert 0 < len(recorded_before) < 600, "the kill did not land mid-run"

    acked_file.write_text("\n".join(acked))
    resumed = subprocess.run(
        [sys.executable, str(APP), str(db), str(log), "resume", str(acked_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count("DONE ") == 200

    after = _histories(db)
    executions = collections.Counter(tuple(line.split()) for line in log.read_text().splitlines())
    for wid in acked:
        events = after[wid]
        assert events[-1].event_type == EventType.WORKFLOW_EXECUTION_COMPLETED
        assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        steps = _completed_steps(events)
        assert sorted(steps) == ["0", "1", "2"], f"{wid}: each activity completes exactly once, got {steps}"
        for s in steps:
            count = executions[(wid, s)]
            assert count >= 1
            if (wid, s) in recorded_before:
                # Its completion was durable before the kill: it must never run again.
                assert count == 1, f"{wid} step {s} ran {count} times though its completion was recorded"
