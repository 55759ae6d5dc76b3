"""How long a graceful stop takes under load: SIGTERM to process exit, and its phases.

    python bench/graceful_stop.py [--rounds 5] [--starters 4] [--drain-timeout 10s]
                                  [--cassandra HOST:PORT] [--json]

A server subprocess (``cadenza server start-dev`` on a SQLite file, or with ``--cassandra`` ``cadenza
server start --config`` on a fresh keyspace of that node) runs workflows of three short activities,
started back to back by ``--starters`` concurrent starters, for a worker in this process. Each round
waits for the load to run (50 starts acknowledged), sends SIGTERM, times the exit and reads the
server's stop line (when its calls were drained and when it had stopped), then starts the server
again on the same data. At the end every acknowledged workflow must complete: a stop that lost one
fails the run. It prints the figures per round and their median and maximum.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cadenza import activity, workflow  # noqa: E402
from cadenza.client import Client  # noqa: E402
from cadenza.worker import Worker  # noqa: E402

QUEUE = "graceful-stop-bench"
_STOPPED = re.compile(r"stopped in ([0-9.]+) s \(calls drained in ([0-9.]+) s; (\d+) refused, (\d+) cut off")


@activity.defn
async def step(label: str) -> str:
    await asyncio.sleep(0.02)
    return label


@workflow.defn
class Steps:
    @workflow.run
    async def run(self, name: str) -> list[str]:
        timeout = timedelta(seconds=10)
        return [
            await workflow.execute_activity(step, f"{name}-{i}", start_to_close_timeout=timeout)
            for i in range(3)
        ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc: subprocess.Popen[str] | None = None
        self.log = tempfile.TemporaryFile(mode="w+")  # the server's stderr, shown if it fails

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cadenza", "server", *self.argv],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving on" not in line:
            raise SystemExit(f"server did not start: {line!r}\n{self.stderr()}")

    def terminate(self) -> dict[str, float]:
        assert self.proc is not None and self.proc.stdout is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(120)
        exit_s = time.monotonic() - began
        match = _STOPPED.search(self.proc.stdout.read())
        if code != 0 or match is None:
            raise SystemExit(f"the stop failed: exit status {code}\n{self.stderr()}")
        stopped, drained, refused, cut_off = match.groups()
        return {
            "exit_s": exit_s,
            "stopped_s": float(stopped),
            "drained_s": float(drained),
            "refused": int(refused),
            "cut_off": int(cut_off),
        }

    def stderr(self) -> str:
        self.log.seek(0)
        return str(self.log.read())[-3000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def _round(
    server: Server, address: str, starters: int, acknowledged: list[str], r: int
) -> dict[str, float]:
    # Enough retries to span the restart: a start refused by the stopping server lands after it.
    client = await Client.connect(address, retries=20)
    count = len(acknowledged)
    running = True

    async def starter(k: int) -> None:
        i = 0
        while running:
            wid = f"r{r}-{k}-{i}"
            i += 1
            try:
                await client.start_workflow(Steps.run, wid, id=wid, task_queue=QUEUE)
            except Exception:
                await asyncio.sleep(0.1)
                continue
            acknowledged.append(wid)

    tasks = [asyncio.create_task(starter(k)) for k in range(starters)]
    while len(acknowledged) < count + 50:
        await asyncio.sleep(0.05)
    figures = await asyncio.to_thread(server.terminate)
    running = False
    await asyncio.to_thread(server.start)
    await asyncio.gather(*tasks)
    return figures


async def _main(args: argparse.Namespace, server: Server, address: str) -> list[dict[str, float]]:
    worker_client = await Client.connect(address, retries=20)
    acknowledged: list[str] = []
    rounds = []
    async with Worker(worker_client, task_queue=QUEUE, workflows=[Steps], activities=[step]):
        for r in range(args.rounds):
            figures = await _round(server, address, args.starters, acknowledged, r)
            rounds.append(figures)
            print(
                f"round {r + 1}: SIGTERM to exit {figures['exit_s']:.2f} s; "
                f"drained in {figures['drained_s']:.2f} s, "
                f"stopped in {figures['stopped_s']:.2f} s; {figures['refused']:.0f} refused, "
                f"{figures['cut_off']:.0f} cut off",
                flush=True,
            )
        client = await Client.connect(address, retries=20)
        for wid in acknowledged:
            result = await asyncio.wait_for(client.get_workflow_handle(wid).result(), 120)
            assert result == [f"{wid}-{i}" for i in range(3)], (wid, result)
    print(f"all {len(acknowledged)} acknowledged workflows completed after the restarts")
    return rounds


def _cassandra_config(tmp: Path, contact: str, port: int, drain: str) -> tuple[Path, str]:
    from cadenza.engine.persistence.cassandra.schema import setup_schema
    from cadenza.engine.persistence.cassandra.session import CassandraSession

    host, _, cport = contact.rpartition(":")
    keyspace = f"cadenza_stop_bench_{uuid.uuid4().hex[:8]}"
    db = CassandraSession.connect(
        [host], int(cport), keyspace, consistency="ONE", serial_consistency="SERIAL"
    )
    setup_schema(db, keyspace)
    db.close_blocking()
    config = tmp / "server.yaml"
    config.write_text(
        f"global:\n  shutdown:\n    drainTimeout: {drain}\n"
        "persistence:\n  numHistoryShards: 4\n  defaultStore: cass\n"
        "  datastores:\n    cass:\n      cassandra:\n"
        f'        hosts: "{host}"\n        port: {cport}\n        keyspace: {keyspace}\n'
        "        consistency: ONE\n        serialConsistency: SERIAL\n"
        f"services:\n  frontend:\n    rpc:\n      grpcPort: {port}\n      bindOnIP: 127.0.0.1\n"
    )
    return config, keyspace


def _drop_keyspace(contact: str, keyspace: str) -> None:
    from cadenza.engine.persistence.cassandra.session import CassandraSession

    host, _, cport = contact.rpartition(":")
    db = CassandraSession.connect(
        [host], int(cport), keyspace, consistency="ONE", serial_consistency="SERIAL"
    )
    try:
        db.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    finally:
        db.close_blocking()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--starters", type=int, default=4)
    parser.add_argument("--drain-timeout", default="10s")
    parser.add_argument("--cassandra", metavar="HOST:PORT", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    port = _free_port()
    keyspace = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.cassandra:
            config, keyspace = _cassandra_config(Path(tmp), args.cassandra, port, args.drain_timeout)
            argv = ["start", "--config", str(config)]
        else:
            argv = ["start-dev", "--headless", "--port", str(port), "-f", f"{tmp}/cadenza.db"]
            argv += ["--drain-timeout", args.drain_timeout]
        server = Server(argv)
        server.start()
        try:
            rounds = asyncio.run(_main(args, server, f"127.0.0.1:{port}"))
        except BaseException:
            print(f"the server's log:\n{server.stderr()}", file=sys.stderr)
            raise
        finally:
            server.kill()
            if keyspace is not None:
                _drop_keyspace(args.cassandra, keyspace)
    summary: dict[str, Any] = {"backend": "cassandra" if args.cassandra else "sqlite", "rounds": len(rounds)}
    for key in ("exit_s", "drained_s", "stopped_s"):
        values = [r[key] for r in rounds]
        summary[key] = {"median": statistics.median(values), "max": max(values)}
        print(f"{key}: median {summary[key]['median']:.2f} s, max {summary[key]['max']:.2f} s")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
