"""Forwarded requests: a signal sent to a standby cluster against the same signal sent to the active one.

    python bench/forwarding_bench.py [--n 500]

Two `cadenza server start-dev --cluster` processes (active, standby) on file databases sharing a log
file, as a user runs them; this process sends --n signals one after another to a waiting workflow
through the active cluster, then through the standby (which forwards each to the active), and
prints both latencies. Target: the forwarded p50 at most twice the direct one.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multidc_drill import NAMES, Server, free_ports  # type: ignore[import-not-found]

from cadenza import workflow
from cadenza.client import Client
from cadenza.schemas.service import NamespaceInfo


@workflow.defn
class Sink:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    def ping(self) -> None:
        pass


async def _timed(client: Client, n: int) -> list[float]:
    handle = client.get_workflow_handle("sink")
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await handle.signal(Sink.ping)
        out.append((time.perf_counter() - t) * 1000)
    return out


async def main(n: int, workdir: Path) -> str:
    ports = free_ports(3)
    peers = [f"--cluster-address={c}=127.0.0.1:{p}" for c, p in zip(NAMES, ports, strict=True)]
    servers = {c: Server(c, p, workdir, peers) for c, p in zip(NAMES[:2], ports[:2], strict=True)}
    for s in servers.values():
        s.start()
    try:
        active = await Client.connect(servers["active"].address, namespace="fw")
        standby = await Client.connect(servers["standby"].address, namespace="fw")
        await active.service.register_namespace(
            NamespaceInfo(
                name="fw", id="", is_global=True, clusters=["active", "standby"], active_cluster="active"
            )
        )
        while True:
            try:
                await standby.service.describe_namespace("fw")
                break
            except Exception:
                await asyncio.sleep(0.1)
        await active.start_workflow(Sink.run, id="sink", task_queue="nobody")
        await _timed(active, 50)  # warm both paths
        await _timed(standby, 50)
        direct = await _timed(active, n)
        forwarded = await _timed(standby, n)
    finally:
        for s in servers.values():
            s.stop()
    d50, f50 = statistics.median(direct), statistics.median(forwarded)
    d99, f99 = (statistics.quantiles(x, n=100)[98] for x in (direct, forwarded))
    return (
        f"signal, {n} in series: to the active cluster p50 {d50:.2f} ms p99 {d99:.2f} ms; through the "
        f"standby (forwarded) p50 {f50:.2f} ms p99 {f99:.2f} ms: forwarded/direct p50 = {f50 / d50:.2f}"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=500)
    args = p.parse_args()
    print(f"# {platform.node()} {platform.machine()} python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as d:
        print(asyncio.run(main(args.n, Path(d))))
