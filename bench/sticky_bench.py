"""Sequential activities over gRPC: one workflow runs N activities one after another.

    python bench/sticky_bench.py [--n 50 400 2000] [--repeat 1] [--profile FILE]

A `cadenza server start-dev` (defaults, on a SQLite file in a temporary directory) and this process
as the client and a default ``Worker``. For each N the workflow runs once with sticky execution (the
default worker) and once without (``max_cached_workflows=0``: no cache, no sticky queue, every
workflow task carries the whole history), and the script prints activities/s for each, and the
server's and this process's CPU seconds per activity. Without stickiness the cost of a workflow task
grows with the history; with it, a task carries only the events after the worker's previous one.

``--profile FILE`` runs the client side (worker and workflow) under cProfile for the sticky runs and
writes the stats to FILE (read them with ``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from grpc_bench import cpu_s, free_port, start_server, tree_cpu_s  # noqa: E402

from cadenza import activity, workflow  # noqa: E402

QUEUE = "sticky-bench"


@activity.defn
async def step(total: int) -> int:
    return total + 1


@workflow.defn
class SequentialActivities:
    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for _ in range(n):
            total = await workflow.execute_activity(step, total, start_to_close_timeout=timedelta(seconds=30))
        return total


async def one_run(address: str, n: int, sticky: bool, run_id: str, server_pid: int) -> dict[str, Any]:
    from cadenza.client import Client
    from cadenza.worker import Worker

    client = await Client.connect(address)
    options: dict[str, Any] = {} if sticky else {"max_cached_workflows": 0}
    async with Worker(
        client, task_queue=QUEUE, workflows=[SequentialActivities], activities=[step], **options
    ):
        server0, self0 = tree_cpu_s(server_pid), cpu_s(os.getpid())
        t0 = time.perf_counter()
        result = await client.execute_workflow(SequentialActivities.run, n, id=run_id, task_queue=QUEUE)
        wall = time.perf_counter() - t0
        server_cpu, self_cpu = tree_cpu_s(server_pid) - server0, cpu_s(os.getpid()) - self0
    assert result == n, result
    await client.service.close()  # type: ignore[attr-defined]
    return {
        "n": n,
        "sticky": sticky,
        "seconds": round(wall, 3),
        "activities_per_s": round(n / wall, 1),
        "server_cpu_ms_per_activity": round(1000 * server_cpu / n, 3),
        "client_cpu_ms_per_activity": round(1000 * self_cpu / n, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="One workflow running N sequential activities over gRPC.")
    parser.add_argument("--n", type=int, nargs="+", default=[50, 400, 2000])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (N, mode); the best is kept")
    parser.add_argument("--profile", type=Path, help="cProfile the sticky runs' client side into this file")
    parser.add_argument("--json", action="store_true", help="print every run as JSON too")
    parser.add_argument(
        "--address", help="use this running server (HOST:PORT; its pid in --server-pid), not a new one"
    )
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--sticky-only", action="store_true", help="skip the runs without a cache")
    args = parser.parse_args()

    if args.address:
        server: Any = None
        address, server_pid = args.address, args.server_pid or os.getpid()
    else:
        tmp = Path(tempfile.mkdtemp(prefix="cadenza-sticky-bench-"))
        port = free_port()
        server, _ = start_server("cadenza", tmp / "bench.db", port, [])
        address, server_pid = f"127.0.0.1:{port}", server.pid
    profiler = cProfile.Profile() if args.profile else None
    rows: list[dict[str, Any]] = []
    try:
        for n in args.n:
            for sticky in (True,) if args.sticky_only else (False, True):
                best: dict[str, Any] | None = None
                for r in range(args.repeat):
                    run_id = f"seq-{n}-{'sticky' if sticky else 'plain'}-{r}"
                    if profiler is not None and sticky:
                        profiler.enable()
                    try:
                        row = asyncio.run(one_run(address, n, sticky, run_id, server_pid))
                    finally:
                        if profiler is not None and sticky:
                            profiler.disable()
                    if best is None or row["activities_per_s"] > best["activities_per_s"]:
                        best = row
                assert best is not None
                rows.append(best)
                mode = "sticky" if sticky else "no cache (max_cached_workflows=0)"
                print(
                    f"N={n:5d}  {mode:34s} {best['activities_per_s']:8.1f} activities/s  "
                    f"server {best['server_cpu_ms_per_activity']:.2f} ms CPU/activity, "
                    f"client {best['client_cpu_ms_per_activity']:.2f} ms CPU/activity",
                    flush=True,
                )
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
    if profiler is not None:
        profiler.dump_stats(str(args.profile))
    if args.json:
        print(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
