"""Three `cadenza server start-dev --cluster NAME` processes on one machine, replicating through one
shared embedded log file, driven with the CLI as an operator would."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from rpc.devserver import DevServer, cadenza_argv, env


def cadenza(address: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*cadenza_argv(), "--address", address, *args], capture_output=True, text=True, env=env(), timeout=60
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


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
    servers = {
        name: DevServer(
            ["--cluster", name, "--replication-log", log, "--db-filename", str(tmp_path / f"{name}.db")]
        ).start()
        for name in ("active", "standby", "other")
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
        refused = cadenza(
            s, "--ns", "video", "wf", "signal", "-w", "video-1", "-n", "approve", "-i", '"bob"', check=False
        )
        assert refused.returncode == 1
        assert "not active in cluster 'standby'" in refused.stderr and "'active'" in refused.stderr
    finally:
        for srv in servers.values():
            assert srv.stop() == 0, srv.stderr()[-3000:]
