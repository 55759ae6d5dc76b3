"""Soak: a dev server under a steady mix of workflows for a long time, recorded minute by minute.

    python bench/soak.py [--minutes 30] [--rate R | --fraction 0.5] [--warmup-minutes 5] [--out FILE]

Starts `cadenza server start-dev` (its defaults: visibility on, a SQLite file in a temporary
directory) and, in this process, a default `Worker` and a starter. Unless ``--rate`` says how many
workflows to start per second, a 20-second burst at concurrency 50 first measures the maximum, and
the soak runs at ``--fraction`` of it (issue 17: half). The mix, started open-loop at the rate:

* 60 % hello world (one activity),
* 20 % a timer (``workflow.sleep`` of 1 s),
* 20 % a signal (the run waits for one, which the starter sends 0.5 s after the start).

Each minute it prints and records (JSON lines in ``--out``): workflows started and completed, the
hello worlds' start -> result p50 / p99, the server's RSS and CPU. At the end: RSS growth from the
end of the warm-up to the last minute [<= 10 %], and the spread of the per-minute p99 [flat].
Started workflows are capped at 1,000 in flight (a server that falls behind is reported, not
buried).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grpc_bench import cpu_s, free_port, rss_mb  # noqa: E402  (bench/ is this script's directory)

from cadenza import activity, workflow  # noqa: E402
from cadenza.client import Client  # noqa: E402
from cadenza.worker import Worker  # noqa: E402

QUEUE = "soak"
MAX_IN_FLIGHT = 1000


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class HelloSoak:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(greet, name, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn
class TimerSoak:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(seconds=1))
        return "woke"


@workflow.defn
class SignalSoak:
    def __init__(self) -> None:
        self.got: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.got is not None)
        return self.got or ""

    @workflow.signal
    def poke(self, value: str) -> None:
        self.got = value


@dataclass
class Minute:
    minute: int
    started: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    hello_ms: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    server_cpu_s: float = 0.0

    def row(self) -> dict[str, float | int]:
        lat = sorted(self.hello_ms)
        p50 = statistics.median(lat) if lat else float("nan")
        p99 = lat[max(0, int(len(lat) * 0.99) - 1)] if lat else float("nan")
        out = asdict(self)
        del out["hello_ms"]
        out.update(hello_p50_ms=round(p50, 2), hello_p99_ms=round(p99, 2))
        return out


def start_server(db: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", "from cadenza.ops.cli import main; main()", "server", "start-dev"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), "--db-filename", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError("the server did not listen within 30 s")


class Soak:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.in_flight = 0
        self.seq = 0
        self.current = Minute(0)
        self.tasks: set[asyncio.Task[None]] = set()

    async def one(self) -> None:
        self.seq += 1
        wid = f"soak-{self.seq}"
        minute = self.current
        minute.started += 1
        self.in_flight += 1
        t0 = time.perf_counter()
        try:
            kind = random.random()
            if kind < 0.6:
                await self.client.execute_workflow(HelloSoak.run, "soak", id=wid, task_queue=QUEUE)
                self.current.hello_ms.append((time.perf_counter() - t0) * 1000)
            elif kind < 0.8:
                await self.client.execute_workflow(TimerSoak.run, id=wid, task_queue=QUEUE)
            else:
                handle = await self.client.start_workflow(SignalSoak.run, id=wid, task_queue=QUEUE)
                await asyncio.sleep(0.5)
                await handle.signal(SignalSoak.poke, "poked")
                await handle.result()
            self.current.completed += 1
        except Exception as e:  # counted and shown: a soak reports failures, it does not stop
            self.current.failed += 1
            if self.current.failed <= 3:
                print(f"  workflow {wid} failed: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            self.in_flight -= 1

    def spawn(self) -> None:
        if self.in_flight >= MAX_IN_FLIGHT:
            self.current.skipped += 1
            return
        task = asyncio.create_task(self.one())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run_at(self, rate: float, seconds: float, on_minute: object = None) -> None:
        """Starts workflows open-loop at ``rate`` per second (exponential gaps) for ``seconds``."""
        t_end = time.monotonic() + seconds
        next_start = time.monotonic()
        next_minute = time.monotonic() + 60
        while time.monotonic() < t_end:
            now = time.monotonic()
            if now >= next_minute and callable(on_minute):
                on_minute()
                next_minute += 60
            if now >= next_start:
                self.spawn()
                next_start += random.expovariate(rate)
                continue
            await asyncio.sleep(min(next_start, next_minute) - now)


async def burst_rate(client: Client, seconds: float = 20.0, concurrency: int = 50) -> float:
    """Workflows of the mix completed per second with ``concurrency`` always in flight."""
    soak = Soak(client)
    stop = time.monotonic() + seconds

    async def loop() -> None:
        while time.monotonic() < stop:
            await soak.one()

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return soak.current.completed / seconds


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cadenza-soak-"))
    port = free_port()
    server = start_server(tmp / "soak.db", port)
    out = open(args.out, "w") if args.out else None  # kept open for the whole soak
    try:
        client = await Client.connect(f"127.0.0.1:{port}")
        async with Worker(
            client, task_queue=QUEUE, workflows=[HelloSoak, TimerSoak, SignalSoak], activities=[greet]
        ):
            rate = args.rate
            if rate is None:
                maximum = await burst_rate(client)
                rate = maximum * args.fraction
                print(f"maximum of the mix: {maximum:.1f} workflows/s; soaking at {rate:.1f}/s", flush=True)
            soak = Soak(client)
            rows: list[dict[str, float | int]] = []
            cpu0 = cpu_s(server.pid)
            print(
                f"{'min':>4} {'started':>8} {'done':>8} {'failed':>6} {'skipped':>7} "
                f"{'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>8} {'CPU s':>7}",
                flush=True,
            )

            def close_minute() -> None:
                nonlocal cpu0
                m = soak.current
                m.rss_mb = round(rss_mb(server.pid), 1)
                cpu = cpu_s(server.pid)
                m.server_cpu_s, cpu0 = round(cpu - cpu0, 2), cpu
                row = m.row()
                rows.append(row)
                print(
                    f"{m.minute + 1:>4} {m.started:>8} {m.completed:>8} {m.failed:>6} {m.skipped:>7} "
                    f"{row['hello_p50_ms']:>8} {row['hello_p99_ms']:>8} {m.rss_mb:>8} {m.server_cpu_s:>7}",
                    flush=True,
                )
                if out is not None:
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                soak.current = Minute(m.minute + 1)

            await soak.run_at(rate, args.minutes * 60, close_minute)
            close_minute()
            await asyncio.wait_for(asyncio.gather(*soak.tasks, return_exceptions=True), 120)
        summarize(rows, args.warmup_minutes)
    finally:
        if out is not None:
            out.close()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def summarize(rows: list[dict[str, float | int]], warmup: int) -> None:
    if len(rows) <= warmup + 1:
        print(f"too short to judge: {len(rows)} minutes with a warm-up of {warmup}")
        return
    steady = rows[warmup:-1]  # the last row is the partial minute at the end
    base, last = float(steady[0]["rss_mb"]), float(steady[-1]["rss_mb"])
    p99s = [float(r["hello_p99_ms"]) for r in steady]
    failed = sum(int(r["failed"]) for r in rows)
    growth = 100 * (last - base) / base
    print(
        f"RSS after warm-up {base:.1f} MB, at the end {last:.1f} MB: growth {growth:+.1f}% "
        f"[<= 10%]; per-minute hello-world p99 {min(p99s):.1f}-{max(p99s):.1f} ms "
        f"(median {statistics.median(p99s):.1f}); failed workflows {failed}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=None, help="workflows started per second")
    ap.add_argument("--fraction", type=float, default=0.5, help="of the measured maximum, without --rate")
    ap.add_argument("--warmup-minutes", type=int, default=5)
    ap.add_argument("--out", default=None, help="JSON lines, one per minute")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
