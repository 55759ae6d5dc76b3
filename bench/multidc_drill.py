"""The multi-DC drill: three clusters under load, failed over again and again, one killed and restarted.

    python bench/multidc_drill.py [--rate 50] [--failovers 10] [--interval 4] [--in-flight 1] [--keep DIR]
        [--real [--kafka HOST:PORT] [--cassandra HOST:PORT] [--shards N] [--partitions N]]

Three `cadenza server start-dev --cluster NAME` processes (active, standby, other) on file databases,
replicating through one shared embedded log file, exactly as a user runs them. This process runs a
worker pool with a worker in every cluster, and a client that talks to all three (any of them
forwards to the active one). While workflows start at --rate per second (each runs an activity,
sleeps a second, waits for a signal, runs another activity; up to --in-flight starts await their
answers at once, one by default, so slow starts lower the rate achieved), the namespace fails over every
--interval seconds, round robin, graceful and forced in turn; half-way, one standby cluster is
killed with SIGKILL and started again on its files. Then the load stops and the drill prints:
workflows started / completed / lost, duplicate events, signals accepted / delivered, whether every
cluster has identical histories, replication lag (p99, max), the graceful failovers' durations, and
the time to converge after the last failover.

--real runs the same drill on the production backends of `cadenza dev services up kafka cassandra`:
each cluster is a `cadenza server start --config FILE` process with its workflows in its own fresh
Cassandra keyspace (consistency ONE/SERIAL, replication factor 1), replicating through real Kafka
(a topic and a DLQ topic per cluster) and indexing visibility through Kafka too (a topic per
cluster, kafka.applications.visibility, into the server's in-memory SQLite visibility store). Topic
and keyspace names carry the run's id; both are dropped at the end unless --keep is given. The
killed cluster restarts on its keyspace and resumes from its consumer group's committed offsets.
The servers' replication consumer groups are named after their cluster (cadenza-replication-NAME),
not after the run: two --real drills must not share a broker at the same time.
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
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.engine.bus import TopicSpec
from cadenza.engine.bus.kafka import KafkaBus
from cadenza.engine.persistence.cassandra import CassandraSession, setup_schema
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


class Real:
    """The production backends of a --real drill: a keyspace per cluster, Kafka topics per cluster,
    all named for the run, and a `server start` config per cluster."""

    def __init__(self, args: argparse.Namespace, ports: dict[str, int], workdir: Path) -> None:
        self.kafka = args.kafka
        host, _, port = args.cassandra.rpartition(":")
        self.cassandra = (host, int(port))
        self.shards, self.partitions = args.shards, args.partitions
        self.ports, self.workdir = ports, workdir
        self.run = uuid.uuid4().hex[:8]
        self.keyspaces = {n: f"cadenza_drill_{n}_{self.run}" for n in NAMES}
        self.topics = {n: f"drill-{n}-{self.run}" for n in NAMES}
        self.visibility = {n: f"drill-{n}-{self.run}-visibility" for n in NAMES}

    def describe(self) -> str:
        host, port = self.cassandra
        return (
            f"Cassandra {host}:{port} (keyspace per cluster, ONE/SERIAL, RF 1, {self.shards} shards), "
            f"Kafka {self.kafka} (replication and visibility, {self.partitions} partitions per "
            f"replication topic), run {self.run}"
        )

    def all_topics(self) -> list[TopicSpec]:
        out = []
        for n in NAMES:
            out += [
                TopicSpec(self.topics[n], self.partitions),
                TopicSpec(f"{self.topics[n]}-dlq", 1),
                TopicSpec(f"{self.topics[n]}-dlq-parked", 1),
                TopicSpec(self.visibility[n], 4),
                TopicSpec(f"{self.visibility[n]}-dlq", 1),
            ]
        return out

    def _admin(self) -> CassandraSession:
        host, port = self.cassandra
        return CassandraSession.connect(
            [host], port, self.keyspaces["active"], consistency="ONE", serial_consistency="SERIAL"
        )

    async def set_up(self) -> None:
        admin = await asyncio.to_thread(self._admin)
        try:
            for ks in self.keyspaces.values():
                await asyncio.to_thread(setup_schema, admin, ks, replication_factor=1)
        finally:
            await asyncio.to_thread(admin.close_blocking)
        bus = KafkaBus(self.kafka)
        try:
            await bus.create_topics(self.all_topics(), exist_ok=True)
        finally:
            await bus.close()
        for n in NAMES:
            (self.workdir / f"{n}.yaml").write_text(yaml.safe_dump(self.config(n), sort_keys=False))

    async def tear_down(self) -> None:
        bus = KafkaBus(self.kafka)
        try:
            existing = await bus.list_topics()
            await bus.delete_topics([t.name for t in self.all_topics() if t.name in existing])
        finally:
            await bus.close()
        admin = await asyncio.to_thread(self._admin)
        try:
            for ks in self.keyspaces.values():
                await asyncio.to_thread(admin.session.execute, f"DROP KEYSPACE IF EXISTS {ks}")
        finally:
            await asyncio.to_thread(admin.close_blocking)

    def config(self, name: str) -> dict[str, Any]:
        """`server start --config` for cluster ``name``: shaped as
        ``cadenza/ops/config/development_kafka_active.yaml``, with this run's names and ports."""
        host, port = self.cassandra
        topics: dict[str, Any] = {}
        for n in NAMES:
            topics[self.topics[n]] = {"cluster": "drill", "partitions": self.partitions}
            topics[f"{self.topics[n]}-dlq"] = {"cluster": "drill"}
        topics[self.visibility[name]] = {"cluster": "drill", "partitions": 4}
        topics[f"{self.visibility[name]}-dlq"] = {"cluster": "drill"}
        return {
            "persistence": {
                "numHistoryShards": self.shards,
                "defaultStore": "cass-default",
                "datastores": {
                    "cass-default": {
                        "cassandra": {
                            "hosts": host,
                            "port": port,
                            "keyspace": self.keyspaces[name],
                            "consistency": "ONE",
                            "serialConsistency": "SERIAL",
                        }
                    }
                },
            },
            "services": {"frontend": {"rpc": {"grpcPort": self.ports[name], "bindOnIP": "127.0.0.1"}}},
            "clusterMetadata": {
                "enableGlobalNamespace": True,
                "failoverVersionIncrement": 10,
                "masterClusterName": "active",
                "currentClusterName": name,
                "clusterInformation": {
                    n: {
                        "enabled": True,
                        "initialFailoverVersion": i + 1,
                        "rpcAddress": f"127.0.0.1:{self.ports[n]}",
                    }
                    for i, n in enumerate(NAMES)
                },
            },
            "dcRedirectionPolicy": {"policy": "selected-apis-forwarding"},
            "kafka": {
                "clusters": {"drill": {"brokers": [self.kafka]}},
                "topics": topics,
                "cluster-topics": {
                    n: {"topic": self.topics[n], "dlq-topic": f"{self.topics[n]}-dlq"} for n in NAMES
                },
                "applications": {
                    "visibility": {
                        "topic": self.visibility[name],
                        "dlq-topic": f"{self.visibility[name]}-dlq",
                    }
                },
            },
            "namespaceDefaults": {"namespaces": ["default"], "retentionDays": 3},
        }


class Server:
    def __init__(
        self, name: str, port: int, workdir: Path, peers: list[str], real: Real | None = None
    ) -> None:
        self.name, self.port, self.workdir, self.peers, self.real = name, port, workdir, peers, real
        self.proc: subprocess.Popen[str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        if self.real is not None:
            return ["server", "start", "--config", str(self.workdir / f"{self.name}.yaml")]
        return [
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
        ]

    def start(self) -> None:
        log = open(self.workdir / f"{self.name}.log", "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cadenza", *self.argv()],
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
    real = Real(args, dict(zip(NAMES, ports, strict=True)), workdir) if args.real else None
    if real is not None:
        print(f"real backends: {real.describe()}", flush=True)
        await real.set_up()
    try:
        return await _drill(args, workdir, ports, real)
    finally:
        if real is not None and not args.keep:
            await real.tear_down()


async def _drill(
    args: argparse.Namespace, workdir: Path, ports: list[int], real: Real | None
) -> dict[str, Any]:
    peers = [f"--cluster-address={n}=127.0.0.1:{p}" for n, p in zip(NAMES, ports, strict=True)]
    servers = {n: Server(n, p, workdir, peers, real) for n, p in zip(NAMES, ports, strict=True)}
    clients: dict[str, Client] = {}
    try:
        for s in servers.values():
            s.start()
        clients = {
            n: await Client.connect(s.address, namespace="drill", retries=8) for n, s in servers.items()
        }
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

        async def start_one(n: int, slots: asyncio.Semaphore) -> None:
            wid = f"drill-{n}"
            try:
                await any_cluster.start_workflow(Drill.run, n, id=wid, task_queue="drill")
            except Exception as e:
                errors.append(f"start {wid}: {e}")
                return
            finally:
                slots.release()
            started.append(wid)
            await signal_later(wid)

        async def load() -> None:
            # At most --in-flight starts wait for their answer at once (1: each start waits for the
            # previous one); behind schedule, the next starts go at once to catch up.
            n, t0, pending = 0, time.monotonic(), set()
            slots = asyncio.Semaphore(args.in_flight)
            while not stop.is_set():
                delay = t0 + n / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                task = asyncio.create_task(start_one(n, slots))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
            await asyncio.gather(*pending)

        graceful_s: list[float] = []
        forced_fallbacks = 0
        killed = ""
        async with pool:
            load_t0 = time.monotonic()
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
            load_s = time.monotonic() - load_t0
            await loader
            print(f"load stopped: {len(started)} workflows started; waiting for their results", flush=True)

            async def result(wid: str) -> Any:
                # As a client would: a cluster restarting, or one that took over before the start
                # reached it (replication lag), is not a lost workflow; retried for a minute at least.
                error, attempts, deadline = "", 0, time.monotonic() + 60
                while attempts < 5 or time.monotonic() < deadline:
                    attempts += 1
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
            "errors (count)": len(errors),
            "rate asked (workflows/s)": args.rate,
            "starts in flight at most": args.in_flight,
            "rate achieved (workflows started/s)": round(len(started) / load_s, 1),
            "backends": real.describe() if real is not None else "embedded (SQLite files, one log file)",
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
    p.add_argument(
        "--in-flight",
        type=int,
        default=1,
        help="starts awaiting their answer at once (1: one after another, so a slow start slows the load)",
    )
    p.add_argument(
        "--keep",
        default=None,
        help="keep the servers' files and logs here (and, with --real, the keyspaces and topics)",
    )
    p.add_argument("--real", action="store_true", help="Cassandra keyspaces and Kafka topics (see above)")
    p.add_argument("--kafka", default="127.0.0.1:19092", help="with --real: Kafka bootstrap servers")
    p.add_argument("--cassandra", default="127.0.0.1:19042", help="with --real: a Cassandra node")
    p.add_argument("--shards", type=int, default=64, help="with --real: history shards per cluster")
    p.add_argument("--partitions", type=int, default=16, help="with --real: partitions per replication topic")
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
