"""The noisy-neighbour latency ratio: one namespace flooded, another's latency with and without it.

    python bench/noisy_neighbour.py [--limit 50] [--flooders 64] [--rate 20] [--seconds 20]
                                    [--ignore-hints] [--no-limit] [--json] [--probe] [--no-freeze]

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

``--probe`` runs the server under ``bench/_server_probe.py`` (event-loop lag, garbage-collection
pauses, CPU per second) and prints, for quiet's slowest workflows of the flood, how long the way to
the worker and back took and what the server's loop and collector did meanwhile. ``--no-freeze``
runs the server without freezing its start-up heap (``cadenza.ops.heap``), as it was before, so the
two can be compared in one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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


RAN_AT: dict[str, float] = {}
"""Quiet workflow id -> wall time its code ran in this process's worker (``--probe``): splits a
latency into the way to the worker and the way back."""


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        if name.startswith("probe:"):
            RAN_AT.setdefault(workflow.info().workflow_id, time.time())  # a bench-only side effect
        return f"hello {name}"


def start_server(
    dynamic_config: Path, probe: Path | None = None, freeze: bool = True
) -> tuple[subprocess.Popen[str], str]:
    entry = (
        ["-c", "from cadenza.ops.cli import main; main()"]
        if probe is None and freeze
        else [str(ROOT / "bench" / "_server_probe.py")]
    )
    argv = [
        sys.executable,
        *entry,
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
    if probe is not None:
        env["CADENZA_PROBE_FILE"] = str(probe)
    if not freeze:
        env["CADENZA_PROBE_NO_FREEZE"] = "1"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "serving on HOST:PORT"
    if "serving on" not in line:
        proc.kill()
        raise RuntimeError(f"the dev server did not start: {line!r}")
    return proc, line.split("serving on", 1)[1].split()[0]


Sample = tuple[float, float, str]
"""One quiet workflow: wall time it was started, seconds from start to result, workflow id."""


async def quiet_latencies(
    client: Client, rate: float, seconds: float, tag: str, samples: list[Sample] | None = None
) -> list[float]:
    """Starts a hello world every 1/rate s for ``seconds``; each one's start-to-result seconds
    (and, into ``samples``, when each started and its id)."""
    latencies: list[float] = []
    failures: list[BaseException] = []
    name = "probe:" if samples is not None else ""

    async def one(n: int) -> None:
        t0 = time.perf_counter()
        wall = time.time()
        wf_id = f"{tag}-{n}-{uuid.uuid4().hex[:8]}"
        try:
            await client.execute_workflow(Hello.run, f"{name}{n}", id=wf_id, task_queue=QUEUE)
        except Exception as e:  # counted and reported: a refused quiet call is a result too
            failures.append(e)
            return
        latencies.append(time.perf_counter() - t0)
        if samples is not None:
            samples.append((wall, latencies[-1], wf_id))

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


async def sample_loop_lag(lags: list[tuple[float, float]], tick_s: float = 0.005) -> None:
    """This process's event-loop lag over 2 ms, as ``(wall time, seconds late)`` (``--probe``):
    the quiet client and its worker run here, and a late loop here is not the server's doing."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(tick_s)
        late = time.perf_counter() - t0 - tick_s
        if late > 0.002:
            lags.append((time.time(), late))


def _overlapping(lags: list[tuple[float, float]], start: float, end: float) -> list[float]:
    return [late for t, late in lags if t - late <= end and t >= start]  # stamped at their end


def explain_slowest(
    samples: list[Sample],
    probe: dict[str, Any],
    serving: float,
    client_lags: list[tuple[float, float]],
    worst: int = 8,
) -> None:
    """Prints, for the slowest quiet workflows of the flood, the way to the worker and back and
    what the server's event loop and garbage collector, and this process's loop, did meanwhile."""
    lags, pauses = probe["lags"], probe["gc"]
    print("slowest quiet workflows during the flood (ms): total = to worker + back; in that window "
          "the server's loop lag (sum, max), its GC pauses (sum, gen 2 count), and the loop lag of "
          "the quiet client and worker's process (sum)", file=sys.stderr)  # fmt: skip
    for wall, latency, wf_id in sorted(samples, key=lambda s: -s[1])[:worst]:
        end = wall + latency
        ran = RAN_AT.get(wf_id)
        in_lags = _overlapping(lags, wall, end)
        in_gc = [(gen, took) for t, gen, took, _ in pauses if t - took <= end and t >= wall]
        here = sum(_overlapping(client_lags, wall, end))
        way = f"{(ran - wall) * 1e3:.0f} + {(end - ran) * 1e3:.0f}" if ran else "?"
        print(
            f"  {latency * 1e3:7.1f} = {way:>11}; loop lag {sum(in_lags) * 1e3:6.1f} "
            f"(max {max(in_lags, default=0) * 1e3:5.1f}); GC {sum(p for _, p in in_gc) * 1e3:5.1f} "
            f"({sum(1 for g, _ in in_gc if g == 2)} gen 2); client loop lag {here * 1e3:6.1f}",
            file=sys.stderr,
        )
    total_lag = sum(late for _, late in lags)
    print(f"  server over the whole run: {len(lags)} loop lags over 2 ms (sum {total_lag:.2f} s, "
          f"max {max((x for _, x in lags), default=0) * 1e3:.0f} ms); {len(pauses)} GC pauses over "
          f"1 ms (sum {sum(p for _, _, p, _ in pauses):.2f} s, max "
          f"{max((p for _, _, p, _ in pauses), default=0) * 1e3:.0f} ms)", file=sys.stderr)  # fmt: skip
    cpu = probe["cpu"]
    busy = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(cpu)]
    print(f"  server CPU per second (cores): {' '.join(f'{x:.2f}' for x in busy)}", file=sys.stderr)
    gen2 = [(t - serving, p, c) for t, g, p, c in pauses if g == 2]
    full = ", ".join(f"{t:.0f} s: {p * 1e3:.0f} ({c * 1e3:.0f})" for t, p, c in gen2)
    print(f"  full (gen 2) collections over 1 ms, [s after the server was up: wall (CPU) ms]: {full}; "
          f"garbage freed by gen 0/1/2: {probe['collected']}; heap at exit: {probe['heap']}",
          file=sys.stderr)  # fmt: skip


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
    counts["cpu_ms"] = int(time.process_time() * 1000)  # what flooding costs this machine too
    return counts


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        dc = Path(tmp) / "dynamicconfig.yaml"
        dc.write_text("" if args.no_limit else f"frontend.namespaceRPS:\n  - value: {args.limit}\n")
        probe = Path(tmp) / "probe.json" if args.probe else None
        flooded_samples: list[Sample] | None = [] if args.probe else None
        server, address = start_server(dc, probe, freeze=not args.no_freeze)
        serving = time.time()
        client_lags: list[tuple[float, float]] = []
        lag_sampler = asyncio.create_task(sample_loop_lag(client_lags)) if args.probe else None
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
                flooded = await quiet_latencies(client, args.rate, args.seconds, "flooded", flooded_samples)
                out, _ = await asyncio.to_thread(flooder.communicate)
                noisy = json.loads(out.strip().splitlines()[-1])
        finally:
            if lag_sampler is not None:
                lag_sampler.cancel()
            server.terminate()
            server.wait(20)
        if probe is not None and flooded_samples is not None and probe.exists():
            explain_slowest(flooded_samples, json.loads(probe.read_text()), serving, client_lags)
    figures: dict[str, Any] = {
        "limit_rps": None if args.no_limit else args.limit,
        "flooders": args.flooders,
        "flooders_honour_hints": not args.ignore_hints,
        "server_freezes_startup_heap": not args.no_freeze,
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
    if not f["server_freezes_startup_heap"]:
        print("server: start-up heap not frozen (--no-freeze)")
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
        f"{f['noisy_attempts_per_s']:.0f} attempts/s; the flooding process used "
        f"{n.get('cpu_ms', 0) / 1e3 / (f['seconds'] + 3.0):.2f} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=50, help="frontend.namespaceRPS of every namespace")
    parser.add_argument(
        "--flooders", type=int, default=64, help="concurrent starters flooding the noisy namespace"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=20.0,
        help="quiet workflows started per second (20 for 20 s: a p99 of 400 samples)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured phase")
    parser.add_argument("--ignore-hints", action="store_true", help="flooders retry refusals at once")
    parser.add_argument("--no-limit", action="store_true", help="no namespace limit (for comparison)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="the server does not freeze its start-up heap (as before cadenza.ops.heap), to compare",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="time the server's event-loop lag and GC pauses and explain quiet's slowest workflows",
    )
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
