"""Core engine benchmarks: in-process engine + worker on a durable SQLite file.

    python bench/core_bench.py [throughput|latency|sequential|signals|all] [--db PATH] [--uvloop]
                               [--metrics off|on|both] [--rounds N]

Workloads (issue targets in brackets):
  throughput  hello world (one activity) at concurrency 200               [>= 1,000 workflows/s]
  throughput_visibility  the same with the embedded visibility path on (no target; for comparison)
  latency     serial hello world, start -> result                          [p50 <= 2 ms, p99 <= 10 ms]
  sequential  one workflow running 2,000 activities one after another      [>= 1,000 activities/s]
  signals     1,000 signals into one workflow                              [>= 5,000 signals/s]

``--metrics on`` runs with the server's metrics (``cadenza.metrics.ServerMetrics``) and the SDK's
(a ``Runtime`` with ``PrometheusConfig``) recording, both endpoints served but not scraped;
``--metrics both`` runs each workload off and on alternately, ``--rounds`` times each, and prints
the medians and the cost of metrics on [<= 5% of hello-world throughput].
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.metrics import MetricsRegistry, ServerMetrics
from cadenza.runtime import PrometheusConfig, Runtime, TelemetryConfig
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

T = timedelta(seconds=30)


@activity.defn
async def hello(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(hello, name, start_to_close_timeout=T)


@workflow.defn
class Sequential:
    @workflow.run
    async def run(self, n: int) -> int:
        for i in range(n):
            await workflow.execute_activity(hello, str(i), start_to_close_timeout=T)
        return n


@workflow.defn
class SignalSink:
    def __init__(self) -> None:
        self.count = 0

    @workflow.run
    async def run(self, n: int) -> int:
        await workflow.wait_condition(lambda: self.count >= n)
        return self.count

    @workflow.signal
    def ping(self, i: int) -> None:
        self.count += 1


METRICS = False
"""Set by ``--metrics``: the server and the SDK record metrics."""


async def _env(db: str, visibility: bool = False) -> WorkflowEnvironment:
    # The core engine, as the targets define it; `throughput_visibility` adds the embedded
    # visibility path (outbox -> embedded log -> indexer -> SQLite visibility store).
    if not METRICS:
        return await WorkflowEnvironment.start_local(db_path=db, visibility=visibility)
    registry = MetricsRegistry(tags={"type": "frontend"})
    registry.serve("127.0.0.1:0")
    env = await WorkflowEnvironment.start_local(
        db_path=db, visibility=visibility, metrics=ServerMetrics(registry)
    )
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address="127.0.0.1:0")))
    env.client = Client(env.client.service, namespace=env.client.namespace, runtime=runtime)
    shutdown = env.shutdown

    async def stop() -> None:
        await shutdown()
        registry.stop_serving()
        runtime.close()

    env.shutdown = stop  # type: ignore[method-assign]
    return env


async def throughput_visibility(db: str) -> str:
    return (await throughput(db, visibility=True)).replace("throughput:", "throughput with visibility:")


async def throughput(db: str, n: int = 4000, concurrency: int = 200, visibility: bool = False) -> str:
    env = await _env(db, visibility)
    # The worker handles as many workflow tasks at once as there are workflows in flight (each
    # task waits for its completion's write); with the default, one per poller, the four pollers
    # cap the rate at four workflow tasks per commit.
    async with Worker(
        env.client,
        task_queue="b",
        workflows=[Hello],
        activities=[hello],
        max_concurrent_workflow_tasks=concurrency,
    ):
        # Warm up caches and code paths.
        await asyncio.gather(
            *(env.client.execute_workflow(Hello.run, "w", id=f"warm-{i}", task_queue="b") for i in range(100))
        )
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                await env.client.execute_workflow(Hello.run, "x", id=f"tp-{i}", task_queue="b")

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(n)))
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    await env.shutdown()
    # CPU time per workflow (this process, all its threads) as well: on a shared machine it moves
    # far less with the neighbours' load than the rate does.
    return (
        f"throughput: {n} hello-world workflows at concurrency {concurrency}: {n / dt:,.0f} workflows/s "
        f"({cpu / n * 1e6:,.0f} us CPU per workflow)"
    )


async def latency(db: str, n: int = 1000) -> str:
    env = await _env(db)
    samples = []
    async with Worker(env.client, task_queue="b", workflows=[Hello], activities=[hello]):
        for i in range(n + 50):
            t0 = time.perf_counter()
            await env.client.execute_workflow(Hello.run, "x", id=f"lat-{i}", task_queue="b")
            if i >= 50:
                samples.append((time.perf_counter() - t0) * 1000)
    await env.shutdown()
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    return f"latency: serial hello world start->result over {n}: p50 {p50:.2f} ms, p99 {p99:.2f} ms"


async def sequential(db: str, n: int = 2000) -> str:
    env = await _env(db)
    async with Worker(env.client, task_queue="b", workflows=[Sequential], activities=[hello]):
        t0 = time.perf_counter()
        await env.client.execute_workflow(Sequential.run, n, id="seq", task_queue="b")
        dt = time.perf_counter() - t0
    await env.shutdown()
    return f"sequential: one workflow, {n} activities in sequence: {n / dt:,.0f} activities/s"


async def signals(db: str, n: int = 1000) -> str:
    env = await _env(db)
    async with Worker(env.client, task_queue="b", workflows=[SignalSink]):
        handle = await env.client.start_workflow(SignalSink.run, n, id="sig", task_queue="b")
        t0 = time.perf_counter()
        await asyncio.gather(*(handle.signal(SignalSink.ping, i) for i in range(n)))
        dt_signals = time.perf_counter() - t0
        assert await handle.result() == n
        dt_all = time.perf_counter() - t0
    await env.shutdown()
    return (
        f"signals: {n} signals into one workflow: {n / dt_signals:,.0f} signals/s accepted "
        f"({n / dt_all:,.0f}/s including the workflow consuming them)"
    )


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=["throughput", "throughput_visibility", "latency", "sequential", "signals", "all"],
    )
    ap.add_argument("--db", help="SQLite file (default: a fresh temporary file)")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed) instead of asyncio")
    ap.add_argument(
        "--metrics",
        choices=["off", "on", "both"],
        default="off",
        help="record server and SDK metrics; both: off and on alternately, side by side",
    )
    ap.add_argument("--rounds", type=int, default=3, help="with --metrics both: runs of each")
    return ap.parse_args()


async def main(args: argparse.Namespace) -> None:
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"durable SQLite file, {'uvloop' if args.uvloop else 'asyncio'} event loop"
    )
    names = (
        ["throughput", "throughput_visibility", "latency", "sequential", "signals"]
        if args.which == "all"
        else [args.which]
    )
    global METRICS
    if args.metrics != "both":
        METRICS = args.metrics == "on"
        for name in names:
            with tempfile.TemporaryDirectory() as d:
                db = args.db or str(Path(d) / "bench.db")
                print(await globals()[name](db), flush=True)
        return
    for name in names:
        rates: dict[bool, list[float]] = {False: [], True: []}
        cpus: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for on in (False, True):
                METRICS = on
                with tempfile.TemporaryDirectory() as d:
                    line = await globals()[name](args.db or str(Path(d) / "bench.db"))
                print(f"  metrics {'on ' if on else 'off'}: {line}", flush=True)
                rates[on].append(_rate(line))
                cpu = re.search(r"\(([\d,]+) us CPU", line)
                if cpu:
                    cpus[on].append(float(cpu.group(1).replace(",", "")))
        off, on_ = statistics.median(rates[False]), statistics.median(rates[True])
        print(
            f"{name}: median of {args.rounds} alternating runs: metrics off {off:,.0f}, "
            f"on {on_:,.0f} ({(off - on_) / off * 100:+.1f}% cost)",
            flush=True,
        )
        if cpus[False] and cpus[True]:
            c_off, c_on = statistics.median(cpus[False]), statistics.median(cpus[True])
            print(
                f"{name}: CPU per workflow, median: metrics off {c_off:,.0f} us, on {c_on:,.0f} us "
                f"({(c_on - c_off) / c_off * 100:+.1f}% cost)",
                flush=True,
            )


def _rate(line: str) -> float:
    """The first figure followed by a rate unit ("1,234 workflows/s"; latency: the p50 as 1/ms)."""
    m = re.search(r"([\d,.]+) (?:workflows|activities|signals)/s", line)
    if m:
        return float(m.group(1).replace(",", ""))
    m = re.search(r"p50 ([\d.]+) ms", line)
    return 1000 / float(m.group(1)) if m else float("nan")


if __name__ == "__main__":
    args = _args()
    if args.uvloop:
        import uvloop  # an optional extra, not a dependency of the engine

        uvloop.run(main(args))
    else:
        asyncio.run(main(args))
