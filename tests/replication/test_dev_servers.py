"""Three `cadenza server start-dev --cluster NAME` processes on one machine, replicating through one
shared embedded log file, driven with the CLI as an operator would."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from pathlib import Path

from rpc.devserver import DevServer, cadenza_argv, env

from cadenza.client import Client
from cadenza.worker import WorkerPool

from .workflows import Waiter


def cadenza(address: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*cadenza_argv(), "--address", address, *args], capture_output=True, text=True, env=env(), timeout=60
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def free_ports(n: int) -> list[int]:
    """Ports free right now, for servers that must know each other's address before they start."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


async def _across_a_graceful_failover(a: str, s: str, o: str) -> None:
    pool = await WorkerPool.connect([a, s, o], namespace="video", task_queue="q", workflows=[Waiter])
    client = await Client.connect(s, namespace="video")
    async with pool:
        handle = await client.start_workflow(Waiter.run, id="wp-1", task_queue="q")
        await handle.signal(Waiter.note, "before")
        out = await asyncio.to_thread(
            cadenza,
            a,
            "n",
            "failover",
            "--ns",
            "video",
            "--to",
            "standby",
            "--graceful",
            "--timeout",
            "30s",
            "-o",
            "json",
        )
        result = json.loads(out.stdout)
        assert result["graceful"] and result["namespace"]["active_cluster"] == "standby", result
        await handle.signal(Waiter.note, "finish")
        assert await asyncio.wait_for(handle.result(), 30) == ["before", "finish"]
    history = await handle.fetch_history()
    assert {e.version for e in history.events} == {1, 2}


def _until(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_three_dev_servers_replicate_a_global_namespace_and_its_workflows(tmp_path: Path) -> None:
    log = str(tmp_path / "replication.bus")
    ports = free_ports(3)
    names = ("active", "standby", "other")
    peers = [f"--cluster-address={n}=127.0.0.1:{p}" for n, p in zip(names, ports, strict=True)]
    servers = {
        name: DevServer(
            [
                "--cluster",
                name,
                "--replication-log",
                log,
                "--db-filename",
                str(tmp_path / f"{name}.db"),
                *peers,
            ]
        ).start(port=port)
        for name, port in zip(names, ports, strict=True)
    }
    try:
        a, s, o = (servers[n].address for n in ("active", "standby", "other"))
        cadenza(
            a,
            "n",
            "re",
            "--ns",
            "video",
            "--gd",
            "true",
            "--cl",
            "active",
            "standby",
            "other",
            "--ac",
            "active",
        )

        def described(address: str) -> dict | None:  # type: ignore[type-arg]
            proc = cadenza(address, "n", "desc", "--ns", "video", "-o", "json", check=False)
            return json.loads(proc.stdout) if proc.returncode == 0 else None

        on_active = described(a)
        assert on_active is not None
        for address in (s, o):
            there = _until(lambda address=address: described(address))
            for key in ("id", "clusters", "active_cluster", "failover_version", "is_global"):
                assert there[key] == on_active[key], key
        assert on_active["active_cluster"] == "active" and on_active["failover_version"] == 1

        cadenza(
            a,
            "--ns",
            "video",
            "wf",
            "start",
            "-t",
            "video",
            "--wt",
            "VideoPipeline",
            "-w",
            "video-1",
            "-i",
            '"v-1"',
        )
        cadenza(a, "--ns", "video", "wf", "signal", "-w", "video-1", "-n", "approve", "-i", '"ann"')
        shown = cadenza(a, "--ns", "video", "wf", "show", "-w", "video-1", "-o", "json").stdout

        def same_on(address: str) -> bool:
            proc = cadenza(address, "--ns", "video", "wf", "show", "-w", "video-1", "-o", "json", check=False)
            return proc.returncode == 0 and proc.stdout == shown

        _until(lambda: same_on(s) and same_on(o))

        # The operator's view from the standby: the clusters, the namespace, replication caught up.
        def described_cluster() -> dict | None:  # type: ignore[type-arg]
            d = json.loads(cadenza(s, "admin", "cluster", "describe", "-o", "json").stdout)
            sources = {src["cluster"]: src for src in d["replication"]["sources"]}
            return (
                d if sources["active"]["lag_messages"] == 0 and sources["active"]["applied_events"] else None
            )

        d = _until(described_cluster)
        assert d["current_cluster"] == "standby" and [c["name"] for c in d["clusters"]] == sorted(names)
        assert [(n["name"], n["active_cluster"], n["failover_version"]) for n in d["namespaces"]] == [
            ("video", "active", 1)
        ]
        assert d["replication"]["dlq"]["depth"] == 0 and d["replication"]["applier"] == "running"
        table = cadenza(s, "admin", "cluster", "describe").stdout
        assert "* standby" in table and "FROM CLUSTER" in table
        # A client of the standby keeps working: its signal is forwarded to the active cluster.
        cadenza(s, "--ns", "video", "wf", "signal", "-w", "video-1", "-n", "approve", "-i", '"bob"')
        shown = cadenza(a, "--ns", "video", "wf", "show", "-w", "video-1", "-o", "json").stdout
        assert shown.count("approve") == 2
        _until(lambda: same_on(s) and same_on(o))
        # Workers in every data centre (one pool), a client of the standby, and a graceful
        # failover by an operator in the middle of a workflow: it finishes on the new active.
        asyncio.run(_across_a_graceful_failover(a, s, o))
        on_other = _until(lambda: (d := described(o)) and d["active_cluster"] == "standby" and d)
        assert on_other["failover_version"] == 2
    finally:
        for srv in servers.values():
            assert srv.stop() == 0, srv.stderr()[-3000:]
