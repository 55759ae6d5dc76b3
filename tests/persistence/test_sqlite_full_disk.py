"""The SQLite store on a full disk: writes fail with an error that says so, nothing acknowledged is
lost or corrupted, and the engine serves again, without a restart, once space returns.

The disk is a real one: a 4 MiB tmpfs mounted for the test (root only; elsewhere the test is skipped
with that reason), filled with a file until writes fail, then freed by deleting it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.workflows import HelloWorkflow, say_hello

from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    stat = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def test_a_full_disk_fails_writes_clearly_and_serving_resumes_when_space_returns(small_disk: Path) -> None:
    db = small_disk / "cadenza.db"

    async def main() -> tuple[list[str], list[str]]:
        env = await WorkflowEnvironment.start_local(db_path=str(db))
        errors: list[str] = []
        started: list[str] = []
        try:
            async with Worker(env.client, task_queue="q", workflows=[HelloWorkflow], activities=[say_hello]):
                for i in range(10):
                    result = await env.client.execute_workflow(
                        HelloWorkflow.run, f"n{i}", id=f"before-{i}", task_queue="q"
                    )
                    assert result == f"Hello, n{i}!"
                filler = _fill(small_disk, leave=64 * 1024)
                for i in range(100):
                    try:
                        start = env.client.start_workflow(
                            HelloWorkflow.run, f"f{i}", id=f"full-{i}", task_queue="q"
                        )
                        await asyncio.wait_for(start, 5)
                        started.append(f"full-{i}")
                    except Exception as e:
                        errors.append(f"{type(e).__name__}: {e}")
                        if len(errors) >= 3:
                            break
                filler.unlink()  # space returns
                # Serving resumes in this engine: a new workflow, and every start that was
                # acknowledged while the disk filled up, complete.
                fresh = await asyncio.wait_for(
                    env.client.execute_workflow(HelloWorkflow.run, "back", id="after", task_queue="q"), 30
                )
                assert fresh == "Hello, back!"
                for wid in started:
                    result = await asyncio.wait_for(env.client.get_workflow_handle(wid).result(), 30)
                    assert result.startswith("Hello, ")
                for i in range(10):
                    assert await env.client.get_workflow_handle(f"before-{i}").result() == f"Hello, n{i}!"
        finally:
            await env.shutdown()
        return errors, started

    errors, _ = asyncio.run(main())
    assert errors, "the disk never filled up: the test did not bite"
    # Each refusal says what is wrong (a start still waiting for the store after 5 s is allowed).
    assert any("disk is full" in e for e in errors), errors
    assert all("disk is full" in e or e.startswith("TimeoutError") for e in errors), errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
