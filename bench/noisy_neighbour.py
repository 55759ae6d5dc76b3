"""The noisy-neighbour latency ratio: one namespace flooded, another's latency with and without it.

    python bench/noisy_neighbour.py [--limit 50] [--flooders 64] [--rate 5] [--seconds 20]
                                    [--ignore-hints] [--no-limit] [--json]

A dev server (``cadenza server start-dev``, a subprocess) serves two namespaces, ``noisy`` and
``quiet``, with ``frontend.namespaceRPS`` (``--limit``, every namespace) in its dynamic config. This
process runs a worker and a client of ``quiet`` that starts a hello-world workflow every
``1/--rate`` seconds and times each from start to result, first for ``--seconds`` on an otherwise idle
server, then for ``--seconds`` while a second subprocess floods ``noisy``: ``--flooders`` concurrent
starters, each starting hello worlds back to back, plus a worker of ``noisy`` that runs the admitted
ones. A starter answers a refusal as the SDK does (waits the server's hint, growing and jittered, see
``cadenza.sdk._overload``; done here rather than inside the client so every refusal is counted);
with ``--ignore-hints`` it tries again at once, the worst case of a client that ignores them.

It prints quiet's p50/p99 latency unloaded and during the flood, their ratios (the target is at most
2x), and noisy's admitted and refused starts. ``--no-limit`` runs the same without the limit, to show
what it protects against. ``--json`` prints the figures as JSON too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cadenza import workflow  # noqa: E402
from cadenza.client import Client  # noqa: E402
from cadenza.exceptions import RPCError  # noqa: E402
from cadenza.sdk._overload import OverloadRetry  # noqa: E402
from cadenza.worker import Worker  # noqa: E402

NOISY, QUIET = "noisy", "quiet"
QUEUE = "hello"


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


def start_server(dynamic_config: Path) -> tuple[subprocess.Popen[str], str]:
    argv = [
        sys.executable,
        "-c",
        "from cadenza.ops.cli import main; main()",
        "server",
        "start-dev",
        "--port",
        "0",
        "--namespace",
        NOISY,
        "--namespace",
        QUIET,
        "--dynamic-config-file",
        str(dynamic_config),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "serving on HOST:PORT"
    if "serving on" not in line:
        proc.kill()
        raise RuntimeError(f"the dev server did not start: {line!r}")
    return proc, line.split("serving on", 1)[1].split()[0]


async def quiet_latencies(client: Client, rate: float, seconds: float, tag: str) -> list[float]:
    """Starts a hello world every 1/rate s for ``seconds``; each one's start-to-result seconds."""
    latencies: list[float] = []
    failures: list[BaseException] = []

    async def one(n: int) -> None:
        t0 = time.perf_counter()
        try:
            await client.execute_workflow(
                Hello.run, str(n), id=f"{tag}-{n}-{uuid.uuid4().hex[:8]}", task_queue=QUEUE
            )
        except Exception as e:  # counted and reported: a refused quiet call is a result too
            failures.append(e)
            return
        latencies.append(time.perf_counter() - t0)

    tasks = []
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        tasks.append(asyncio.create_task(one(n)))
        n += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    if failures:
        print(f"  {tag}: {len(failures)} of {n} quiet workflows failed, e.g. {failures[0]}", file=sys.stderr)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def flood(address: str, flooders: int, seconds: float, ignore_hints: bool) -> dict[str, int]:
    """The flooding side (its own process): the starters and a worker."""
    client = await Client.connect(address, namespace=NOISY)
    client.service.max_overload_wait = 0  # type: ignore[attr-defined]  # the starters wait themselves
    counts = {"admitted": 0, "refused": 0, "gave_up": 0, "other_errors": 0}
    deadline = time.perf_counter() + seconds

    async def starter(k: int) -> None:
        n = 0
        backoff = OverloadRetry()
        while time.perf_counter() < deadline:
            n += 1
            try:
                await client.start_workflow(
                    Hello.run, "x", id=f"flood-{k}-{n}-{uuid.uuid4().hex[:6]}", task_queue=QUEUE
                )
            except RPCError as e:
                if e.retry_after is None:
                    counts["other_errors"] += 1
                    continue
                counts["refused"] += 1
                if ignore_hints:
                    continue
                wait = backoff.next_wait(e.retry_after)
                if wait is None:  # the SDK would raise the refusal here; a flooder starts over
                    counts["gave_up"] += 1
                    backoff = OverloadRetry()
                    continue
                await asyncio.sleep(wait)
                continue
            counts["admitted"] += 1
            backoff = OverloadRetry()

    async with Worker(client, task_queue=QUEUE, workflows=[Hello]):
        await asyncio.gather(*(starter(k) for k in range(flooders)))
    return counts


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        dc = Path(tmp) / "dynamicconfig.yaml"
        dc.write_text("" if args.no_limit else f"frontend.namespaceRPS:\n  - value: {args.limit}\n")
        server, address = start_server(dc)
        try:
            client = await Client.connect(address, namespace=QUIET)
            async with Worker(client, task_queue=QUEUE, workflows=[Hello]):
                await quiet_latencies(client, args.rate, 2.0, "warm-up")
                unloaded = await quiet_latencies(client, args.rate, args.seconds, "unloaded")
                flood_s = args.seconds + 3.0
                flooder = subprocess.Popen(
                    [sys.executable, __file__, "--flood-child", address, "--flooders", str(args.flooders),
                     "--seconds", str(flood_s), *(["--ignore-hints"] if args.ignore_hints else [])],
                    stdout=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                await asyncio.sleep(2.0)  # the flood reaches full strength
                flooded = await quiet_latencies(client, args.rate, args.seconds, "flooded")
                out, _ = await asyncio.to_thread(flooder.communicate)
                noisy = json.loads(out.strip().splitlines()[-1])
        finally:
            server.terminate()
            server.wait(20)
    figures: dict[str, Any] = {
        "limit_rps": None if args.no_limit else args.limit,
        "flooders": args.flooders,
        "flooders_honour_hints": not args.ignore_hints,
        "quiet_rate": args.rate,
        "seconds": args.seconds,
        "quiet_unloaded": {"n": len(unloaded), "p50_ms": percentile(unloaded, 0.5) * 1e3,
                           "p99_ms": percentile(unloaded, 0.99) * 1e3},
        "quiet_flooded": {"n": len(flooded), "p50_ms": percentile(flooded, 0.5) * 1e3,
                          "p99_ms": percentile(flooded, 0.99) * 1e3},
        "noisy": noisy,
        "noisy_admitted_per_s": noisy["admitted"] / flood_s,
        "noisy_attempts_per_s": (noisy["admitted"] + noisy["refused"]) / flood_s,
    }  # fmt: skip
    u, f = figures["quiet_unloaded"], figures["quiet_flooded"]
    figures["ratio_p50"] = f["p50_ms"] / u["p50_ms"]
    figures["ratio_p99"] = f["p99_ms"] / u["p99_ms"]
    figures["mean_unloaded_ms"] = statistics.fmean(unloaded) * 1e3
    figures["mean_flooded_ms"] = statistics.fmean(flooded) * 1e3
    return figures


def report(f: dict[str, Any]) -> None:
    limit = "none" if f["limit_rps"] is None else f"{f['limit_rps']} requests/s per namespace"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    how = "honouring the retry hints" if f["flooders_honour_hints"] else "ignoring the retry hints"
    print(f"limit: {limit}; {f['flooders']} flooders on {NOISY}, {how}")
    print(f"{QUIET}: {f['quiet_rate']} hello worlds/s for {f['seconds']} s per phase")
    print("| quiet latency | unloaded | during the flood | ratio |")
    print("| --- | --- | --- | --- |")
    u, d = f["quiet_unloaded"], f["quiet_flooded"]
    print(f"| p50 | {u['p50_ms']:.1f} ms | {d['p50_ms']:.1f} ms | {f['ratio_p50']:.2f}x |")
    print(f"| p99 | {u['p99_ms']:.1f} ms | {d['p99_ms']:.1f} ms | {f['ratio_p99']:.2f}x |")
    print(f"(workflows measured: {u['n']} unloaded, {d['n']} flooded)")
    n = f["noisy"]
    print(
        f"{NOISY}: {n['admitted']} admitted ({f['noisy_admitted_per_s']:.0f}/s), {n['refused']} refused, "
        f"({n['gave_up']} after waiting 10 s), {n['other_errors']} other errors; "
        f"{f['noisy_attempts_per_s']:.0f} attempts/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=50, help="frontend.namespaceRPS of every namespace")
    parser.add_argument(
        "--flooders", type=int, default=64, help="concurrent starters flooding the noisy namespace"
    )
    parser.add_argument("--rate", type=float, default=5.0, help="quiet workflows started per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured phase")
    parser.add_argument("--ignore-hints", action="store_true", help="flooders retry refusals at once")
    parser.add_argument("--no-limit", action="store_true", help="no namespace limit (for comparison)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--flood-child", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_child:
        counts = asyncio.run(flood(args.flood_child, args.flooders, args.seconds, args.ignore_hints))
        print(json.dumps(counts))
        return
    figures = asyncio.run(measure(args))
    report(figures)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
