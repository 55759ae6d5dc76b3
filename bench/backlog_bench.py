"""A 100,000-task activity backlog with no worker: server memory, and the drain rate once workers come.

    python bench/backlog_bench.py [--workflows 50] [--activities 2000] [--pollers 16] [--keep-in-memory]

The engine runs in this process on the default SQLite store (a file in a temporary directory),
without visibility. ``--workflows`` workflows each schedule ``--activities`` activities (at most
2,000 pending per run) on a queue no worker polls; the workflow worker is then shut down and its
cache dropped, so what remains in the process is the server. The script prints the process's RSS
before and once the backlog is in place (and its peak), how many tasks matching holds in memory,
and then the rate at which ``--pollers`` concurrent pollers take and start the activities
(poll + recorded start, as a worker's poll does; the activities are not completed). The workflows
are terminated at the end.

``--keep-in-memory`` turns the spill off (every task stays in matching's memory) for comparison.

``--server-process`` runs the server as users run it instead: ``cadenza server start-dev`` (its
defaults, visibility included) in a process of its own on a SQLite file, the workflow worker and
the pollers in this one, over gRPC. The RSS figures are then the server process's alone.
``--drain N`` takes only the first N tasks (the drain rate, sooner).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cadenza import activity, workflow  # noqa: E402
from cadenza.engine.matching import ACTIVITY_TASK  # noqa: E402
from cadenza.engine.matching_backlog import BacklogConfig  # noqa: E402
from cadenza.testing import WorkflowEnvironment  # noqa: E402
from cadenza.worker import Worker  # noqa: E402

WF_QUEUE = "backlog-bench"
ACT_QUEUE = "backlog-bench-steps"


@activity.defn
async def step(index: int) -> None:
    """Never run here: the bench's pollers only take and start the tasks."""


@workflow.defn
class FanOut:
    @workflow.run
    async def run(self, count: int) -> None:
        for i in range(count):
            workflow.start_activity(step, i, task_queue=ACT_QUEUE, start_to_close_timeout=timedelta(hours=1))
        await workflow.wait_condition(lambda: False)


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current, peak) resident set size of a process (this one by default) in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def main_server_process(args: argparse.Namespace) -> dict[str, object]:
    """The backlog on a ``start-dev`` server in its own process; its RSS alone is measured."""
    from cadenza.client import Client

    total = args.workflows * args.activities
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cadenza",
                "server",
                "start-dev",
                "--headless",
                "--port",
                "0",
                "-f",
                str(Path(tmp) / "cadenza.db"),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert proc.stdout is not None
            ready = re.search(r"serving on (\S+):(\d+)", proc.stdout.readline())
            if ready is None:
                raise SystemExit("the server did not start")
            client = await Client.connect(f"127.0.0.1:{ready.group(2)}")
            before, _ = rss_mb(proc.pid)
            started = time.perf_counter()
            ids = [f"backlog-{uuid.uuid4().hex[:8]}-{i}" for i in range(args.workflows)]
            async with Worker(client, task_queue=WF_QUEUE, workflows=[FanOut]):
                for wid in ids:
                    await client.start_workflow(FanOut.run, args.activities, id=wid, task_queue=WF_QUEUE)
                for wid in ids:  # every activity scheduled (its transfer task written)
                    handle = client.get_workflow_handle(wid)
                    while len((await handle.describe()).pending_activities) < args.activities:
                        await asyncio.sleep(0.2)
            fill_s = time.perf_counter() - started
            # The spill writes a task half a second after it was queued: wait for the RSS to settle.
            with_backlog, last = rss_mb(proc.pid)[0], 0.0
            for _ in range(30):
                await asyncio.sleep(1.0)
                last, with_backlog = with_backlog, rss_mb(proc.pid)[0]
                if abs(with_backlog - last) < 1.0:
                    break
            _, peak = rss_mb(proc.pid)
            want = min(args.drain or total, total)
            taken = 0
            drain_started = last_taken = time.perf_counter()

            async def poller() -> None:
                nonlocal taken, last_taken
                while taken < want:
                    task = await client.service.poll_activity_task_queue(
                        client.namespace, ACT_QUEUE, identity="bench"
                    )
                    if task is not None:
                        taken += 1
                        last_taken = time.perf_counter()

            await asyncio.wait_for(asyncio.gather(*(poller() for _ in range(args.pollers))), 3600)
            drain_s = last_taken - drain_started
            _, peak_after = rss_mb(proc.pid)
            for wid in ids:
                await client.get_workflow_handle(wid).terminate("bench over")
        finally:
            proc.terminate()
            proc.wait(60)
    return {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "server": "cadenza server start-dev (own process, SQLite file, default visibility)",
        "backlog_tasks": total,
        "workflows": args.workflows,
        "fill_s": round(fill_s, 1),
        "server_rss_before_mb": round(before, 1),
        "server_rss_with_backlog_mb": round(with_backlog, 1),
        "server_rss_peak_mb": round(max(peak, peak_after), 1),
        "drain_pollers": args.pollers,
        "drained_tasks": taken,
        "drain_s": round(drain_s, 1),
        "drain_tasks_per_s": round(taken / drain_s) if drain_s else None,
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    total = args.workflows * args.activities
    with tempfile.TemporaryDirectory() as tmp:
        env = await WorkflowEnvironment.start_local(db_path=Path(tmp) / "cadenza.db", visibility=False)
        try:
            matching = env.host.matching
            if args.keep_in_memory:
                matching.config = BacklogConfig(spill_after_s=1e9, max_in_memory=10**9)
            ns_id = (await env.host.namespaces.get(env.client.namespace)).id
            gc.collect()
            before, _ = rss_mb()
            started = time.perf_counter()
            ids = [f"backlog-{uuid.uuid4().hex[:8]}-{i}" for i in range(args.workflows)]
            async with Worker(env.client, task_queue=WF_QUEUE, workflows=[FanOut]):
                for wid in ids:
                    await env.client.start_workflow(FanOut.run, args.activities, id=wid, task_queue=WF_QUEUE)
                q = matching.queue(ns_id, ACT_QUEUE, ACTIVITY_TASK)

                def queued() -> int:
                    written = q.backlog.written if q.backlog is not None else 0
                    return written + len(q.tasks)

                while queued() < total:
                    await asyncio.sleep(0.05)
            fill_s = time.perf_counter() - started
            # Let the time-based spill take what remains in memory, then measure the server alone.
            await asyncio.sleep(2 * matching.config.spill_after_s + 0.5 if not args.keep_in_memory else 0.5)
            gc.collect()
            with_backlog, peak = rss_mb()
            held = q.held_in_memory()
            written = q.backlog.written if q.backlog is not None else 0

            frontend = env.host.frontend
            taken = 0
            drain_started = last_taken = time.perf_counter()

            want = min(args.drain or total, total)

            async def poller() -> None:
                nonlocal taken, last_taken
                while taken < want:
                    task = await frontend.poll_activity_task_queue(
                        env.client.namespace, ACT_QUEUE, identity="bench", timeout_s=1
                    )
                    if task is not None:
                        taken += 1
                        last_taken = time.perf_counter()

            await asyncio.gather(*(poller() for _ in range(args.pollers)))
            drain_s = last_taken - drain_started
            _, peak_after = rss_mb()
            for wid in ids:
                await env.client.get_workflow_handle(wid).terminate("bench over")
        finally:
            await env.shutdown()
    return {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "store": "sqlite (file)",
        "spill": not args.keep_in_memory,
        "backlog_tasks": total,
        "workflows": args.workflows,
        "fill_s": round(fill_s, 1),
        "rss_before_mb": round(before, 1),
        "rss_with_backlog_mb": round(with_backlog, 1),
        "rss_peak_mb": round(max(peak, peak_after), 1),
        "tasks_held_in_memory": held,
        "tasks_written_to_store": written,
        "drain_pollers": args.pollers,
        "drained_tasks": taken,
        "drain_s": round(drain_s, 1),
        "drain_tasks_per_s": round(taken / drain_s),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=50)
    parser.add_argument("--activities", type=int, default=2000, help="per workflow (at most 2,000)")
    parser.add_argument("--pollers", type=int, default=16)
    parser.add_argument("--keep-in-memory", action="store_true", help="turn the spill off, for comparison")
    parser.add_argument("--server-process", action="store_true", help="start-dev in its own process")
    parser.add_argument("--drain", type=int, default=0, help="tasks to drain (all by default)")
    args = parser.parse_args()
    run = main_server_process if args.server_process else main
    print(json.dumps(asyncio.run(run(args)), indent=1))
