"""The multi-DC drill: three clusters under load, failed over again and again, one killed and restarted.

    python bench/multidc_drill.py [--rate 50] [--failovers 10] [--interval 4] [--keep DIR]

Three `cadenza server start-dev --cluster NAME` processes (active, standby, other) on file databases,
replicating through one shared embedded log file, exactly as a user runs them. This process runs a
worker pool with a worker in every cluster, and a client that talks to all three (any of them
forwards to the active one). While workflows start at --rate per second (each runs an activity,
sleeps a second, waits for a signal, runs another activity), the namespace fails over every
--interval seconds, round robin, graceful and forced in turn; half-way, one standby cluster is
killed with SIGKILL and started again on its files. Then the load stops and the drill prints:
workflows started / completed / lost, duplicate events, signals accepted / delivered, whether every
cluster has identical histories, replication lag (p99, max), the graceful failovers' durations, and
the time to converge after the last failover.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.schemas.events import EventType
from cadenza.schemas.service import NamespaceInfo
from cadenza.worker import WorkerPool

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("active", "standby", "other")
T = timedelta(seconds=30)


@activity.defn
async def work(step: str) -> str:
    return step


@workflow.defn
class Drill:
    def __init__(self) -> None:
        self.go: list[str] = []

    @workflow.run
    async def run(self, n: int) -> str:
        await workflow.execute_activity(work, f"{n}-a", start_to_close_timeout=T)
        await workflow.sleep(timedelta(seconds=1))
        await workflow.wait_condition(lambda: bool(self.go))
        await workflow.execute_activity(work, f"{n}-b", start_to_close_timeout=T)
        return f"{n}:{','.join(self.go)}"

    @workflow.signal
    def proceed(self, who: str) -> None:
        self.go.append(who)


class Server:
    def __init__(self, name: str, port: int, workdir: Path, peers: list[str]) -> None:
        self.name, self.port, self.workdir, self.peers = name, port, workdir, peers
        self.proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.workdir / f"{self.name}.log", "a")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cadenza",
                "server",
                "start-dev",
                "--cluster",
                self.name,
                "--port",
                str(self.port),
                "--db-filename",
                str(self.workdir / f"{self.name}.db"),
                "--replication-log",
                str(self.workdir / "replication.bus"),
                *self.peers,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving on" not in line:
            raise RuntimeError(f"{self.name} did not start: {line!r}; see {self.workdir}/{self.name}.log")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


async def _completed(client: Client, ids: list[str]) -> list[bool]:
    out = []
    for wid in ids:
        try:
            out.append((await client.get_workflow_handle(wid).describe()).status == "COMPLETED")
        except Exception:
            out.append(False)
    return out


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def drill(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    ports = free_ports(3)
    peers = [f"--cluster-address={n}=127.0.0.1:{p}" for n, p in zip(NAMES, ports, strict=True)]
    servers = {n: Server(n, p, workdir, peers) for n, p in zip(NAMES, ports, strict=True)}
    for s in servers.values():
        s.start()
    clients = {n: await Client.connect(s.address, namespace="drill", retries=8) for n, s in servers.items()}
    try:
        await clients["active"].service.register_namespace(
            NamespaceInfo(name="drill", id="", is_global=True, clusters=list(NAMES), active_cluster="active")
        )
        for n in NAMES:
            while True:
                try:
                    await clients[n].service.describe_namespace("drill")
                    break
                except Exception:
                    await asyncio.sleep(0.1)
        any_cluster = await Client.connect(
            [s.address for s in servers.values()], namespace="drill", retries=8
        )
        pool = WorkerPool(list(clients.values()), task_queue="drill", workflows=[Drill], activities=[work])
        started: list[str] = []
        signalled: list[str] = []
        errors: list[str] = []
        stop = asyncio.Event()

        async def signal_later(wid: str) -> None:
            await asyncio.sleep(1.5)
            for attempt in range(20):
                try:
                    # One request id for every attempt: a retry after a lost answer is not a second signal.
                    await any_cluster.get_workflow_handle(wid).signal(
                        Drill.proceed, "ok", request_id=f"go-{wid}"
                    )
                    signalled.append(wid)
                    return
                except Exception as e:  # a cluster being killed: the next attempt goes elsewhere
                    if attempt and "already closed" in str(e):
                        # An earlier attempt was applied (its answer was lost): the workflow
                        # can only have closed after receiving it.
                        signalled.append(wid)
                        return
                    last = f"signal {wid}: {e}"
                    await asyncio.sleep(0.25)
            errors.append(last)

        async def load() -> None:
            n, t0, pending = 0, time.monotonic(), set()
            while not stop.is_set():
                delay = t0 + n / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                wid = f"drill-{n}"
                try:
                    await any_cluster.start_workflow(Drill.run, n, id=wid, task_queue="drill")
                    started.append(wid)
                    task = asyncio.create_task(signal_later(wid))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                except Exception as e:
                    errors.append(f"start {wid}: {e}")
                n += 1
            await asyncio.gather(*pending)

        graceful_s: list[float] = []
        forced_fallbacks = 0
        killed = ""
        async with pool:
            loader = asyncio.create_task(load())
            active = "active"
            last_failover = time.monotonic()
            for i in range(args.failovers):
                await asyncio.sleep(args.interval)
                target = NAMES[(NAMES.index(active) + 1) % 3]
                graceful = i % 2 == 0
                r = await clients[active].service.failover_namespace(  # type: ignore[attr-defined]
                    "drill", target, graceful=graceful, timeout_s=10
                )
                if graceful:
                    if r.graceful:
                        graceful_s.append(r.seconds)
                    else:
                        forced_fallbacks += 1
                print(f"failover {i + 1}: {active} -> {target} ({r.message})", flush=True)
                active = target
                last_failover = time.monotonic()
                if i == args.failovers // 2:
                    killed = next(n for n in NAMES if n != active)
                    print(f"kill -9 {killed}", flush=True)
                    servers[killed].kill9()
                    await asyncio.sleep(2)
                    servers[killed].start()  # same files and port: its clients reconnect by themselves
            stop.set()
            await loader
            print(f"load stopped: {len(started)} workflows started; waiting for their results", flush=True)

            async def result(wid: str) -> Any:
                error = ""
                for _ in range(5):  # as a client would: a cluster restarting is not a lost workflow
                    try:
                        return await asyncio.wait_for(any_cluster.get_workflow_handle(wid).result(), 90)
                    except Exception as e:
                        error = f"result {wid}: {type(e).__name__}: {e}"
                        await asyncio.sleep(1)
                errors.append(error)
                return None

            results = [r for r in await asyncio.gather(*(result(w) for w in started)) if r is not None]
        completed = len(results)

        async def histories(cluster: str) -> dict[str, list[Any]]:
            out = {}
            for wid in started:
                h = await clients[cluster].get_workflow_handle(wid).fetch_history()
                out[wid] = [(e.event_id, e.event_type, e.version, e.event_time) for e in h.events]
            return out

        t_conv = time.monotonic()
        identical = False
        while time.monotonic() - t_conv < 120:
            try:
                views = [await histories(n) for n in NAMES]
                if views[0] == views[1] == views[2]:
                    identical = True
                    break
            except Exception:
                pass
            await asyncio.sleep(0.5)
        converge_s = time.monotonic() - last_failover
        duplicates = 0
        delivered = 0
        for events in (await histories(active)).values():
            kinds = Counter(e[1] for e in events)
            delivered += kinds[EventType.WORKFLOW_EXECUTION_SIGNALED]
            for kind in (
                EventType.TIMER_FIRED,
                EventType.ACTIVITY_TASK_COMPLETED,
                EventType.WORKFLOW_EXECUTION_STARTED,
            ):
                limit = 2 if kind == EventType.ACTIVITY_TASK_COMPLETED else 1
                duplicates += max(0, kinds[kind] - limit)
        lost = [w for w, r in zip(started, await _completed(any_cluster, started), strict=True) if not r]
        for wid in lost[:3]:  # what each cluster knows of a workflow that did not finish
            for n in NAMES:
                h = await clients[n].get_workflow_handle(wid).fetch_history()
                d = await clients[n].get_workflow_handle(wid).describe()
                rows = [f"{e.event_id}:{e.event_type.name}@{e.version}" for e in h.events]
                print(f"{wid} on {n}: {' '.join(rows)} | {'; '.join(d.version_histories)}", flush=True)
        lags = []
        for n in NAMES:
            d = await clients[n].service.describe_cluster()  # type: ignore[attr-defined]
            lags.append(d["replication"]["lag_seconds"])
        return {
            "workflows started": len(started),
            "completed": completed,
            "lost": len(started) - completed,
            "duplicate events": duplicates,
            "signals accepted": len(signalled),
            "signals delivered": delivered,
            "histories identical": identical,
            "failovers": args.failovers,
            "graceful failovers (s)": [round(x, 2) for x in graceful_s],
            "graceful fell back to forced": forced_fallbacks,
            "killed and restarted": killed,
            "replication lag p99 / max (s), per cluster": [(x["p99"], x["max"]) for x in lags],
            "converged after the last failover (s)": round(converge_s, 1),
            "errors": errors[:5],
            "rate asked (workflows/s)": args.rate,
        }
    finally:
        for c in clients.values():
            await c.service.close()  # type: ignore[attr-defined]
        for s in servers.values():
            s.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--failovers", type=int, default=10)
    p.add_argument("--interval", type=float, default=4.0)
    p.add_argument("--keep", default=None, help="keep the servers' files and logs in this directory")
    args = p.parse_args()
    print(f"# {platform.node()} {platform.machine()} python {platform.python_version()}", flush=True)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        out = asyncio.run(drill(args, Path(args.keep)))
    else:
        with tempfile.TemporaryDirectory() as d:
            out = asyncio.run(drill(args, Path(d)))
    print(json.dumps(out, indent=2, default=str))
    ok = out["lost"] == 0 and out["duplicate events"] == 0 and out["histories identical"]
    ok = ok and out["signals accepted"] == out["signals delivered"] == out["workflows started"]
    print("drill:", "PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
