"""The dev server trims its own visibility log: what its indexer has committed past is deleted,
so the ``<db>.bus`` file does not keep every visibility message ever sent."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from e2e.workflows import HelloWorkflow, say_hello

from cadenza.client import Client
from cadenza.ops import devserver
from cadenza.ops.devserver import ServerProcess, ServerSettings
from cadenza.worker import Worker


def _messages(bus_file: Path) -> int:
    with sqlite3.connect(bus_file) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM bus_messages").fetchone()[0])


def test_the_visibility_log_is_trimmed_once_indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devserver, "RETENTION_INTERVAL_S", 0.2)
    db = tmp_path / "dev.db"
    bus_file = Path(f"{db}.bus")

    async def main() -> tuple[int, int]:
        server = ServerProcess(ServerSettings(port=0, db_filename=str(db)))
        await server.start()
        try:
            client = await Client.connect(f"127.0.0.1:{server.port}")
            async with Worker(client, task_queue="trim", workflows=[HelloWorkflow], activities=[say_hello]):
                for i in range(20):
                    await client.execute_workflow(
                        HelloWorkflow.run, f"n{i}", id=f"trim-{i}", task_queue="trim"
                    )
            # Every run is listed: the indexer has the records (and has committed past them).
            for _ in range(100):
                closed = "WorkflowType = 'HelloWorkflow' AND ExecutionStatus = 'Completed'"
                if (await client.service.count_workflow_executions("default", closed)).count == 20:
                    break
                await asyncio.sleep(0.1)
            sent = _messages(bus_file)
            for _ in range(50):  # a few retention rounds
                if _messages(bus_file) == 0:
                    break
                await asyncio.sleep(0.1)
            left = _messages(bus_file)
            await client.service.close()  # type: ignore[attr-defined]
        finally:
            await server.stop()
        return sent, left

    sent, left = asyncio.run(main())
    assert left < sent or sent == 0, f"{left} of {sent} messages still in the log"
    assert left == 0, f"{left} consumed messages were kept"
