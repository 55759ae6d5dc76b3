"""The `cadenza` command as users run it: real processes, exit statuses, stdout and stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from rpc.devserver import DevServer, cadenza_argv, env

QUEUE = "faults"


def cadenza(*args: str, address: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    e = env()
    if address:
        e["CADENZA_ADDRESS"] = address
    proc = subprocess.run([*cadenza_argv(), *args], capture_output=True, text=True, env=e, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_commands_in_processes_with_json_output(server: DevServer) -> None:
    a = server.address
    assert "default" in [
        n["name"] for n in json.loads(cadenza("namespace", "list", "-o", "json", address=a).stdout)
    ]
    cadenza("n", "re", "--ns", "proc-ns", "--desc", "from a process", address=a)
    assert json.loads(cadenza("--ns", "proc-ns", "n", "describe", "-o", "json", address=a).stdout)[
        "description"
    ] == ("from a process")
    out = json.loads(
        cadenza(
            "wf",
            "run",
            "-t",
            QUEUE,
            "--wt",
            "ThreeSteps",
            "-w",
            "p-1",
            "-i",
            '"p-1"',
            "-o",
            "json",
            address=a,
        ).stdout
    )
    assert out["result"] == ["p-1:0", "p-1:1", "p-1:2"]
    assert (
        json.loads(cadenza("wf", "describe", "-w", "p-1", "-o", "json", address=a).stdout)["status"]
        == "COMPLETED"
    )


def test_env_vars_and_flags_choose_the_server_and_namespace(server: DevServer) -> None:
    e = {"CADENZA_NAMESPACE": "missing-ns"}
    proc = subprocess.run(
        [*cadenza_argv(), "n", "describe"],
        capture_output=True,
        text=True,
        env={**env(), **e, "CADENZA_ADDRESS": server.address},
        timeout=60,
    )
    assert proc.returncode == 1 and "missing-ns" in proc.stderr
    # A flag beats the environment.
    assert cadenza(
        "--address", server.address, "n", "describe", "--ns", "default", address="127.0.0.1:1"
    ).stdout


def test_errors_exit_non_zero_on_stderr(server: DevServer) -> None:
    proc = cadenza("wf", "describe", "-w", "nope", address=server.address, check=False)
    assert proc.returncode == 1 and proc.stdout == "" and proc.stderr.startswith("error: ")
    proc = cadenza("wf", "start", address=server.address, check=False)
    assert proc.returncode == 2 and "Missing option" in proc.stderr


def test_start_dev_serves_a_file_database_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "dev.db"
    srv = DevServer(
        [
            "--db-filename",
            str(db),
            "--namespace",
            "default",
            "--namespace",
            "extra",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ]
    ).start()
    try:
        names = json.loads(cadenza("n", "list", "-o", "json", address=srv.address).stdout)
        assert {n["name"] for n in names} == {"default", "extra"}
    finally:
        assert srv.stop() == 0
    logs = [json.loads(line) for line in srv.stderr().splitlines() if line.startswith("{")]
    assert any(r["msg"] == "shutting down" for r in logs)
    # The namespaces survived in the file.
    again = DevServer(["--db-filename", str(db)]).start()
    try:
        names = json.loads(cadenza("n", "list", "-o", "json", address=again.address).stdout)
        assert {n["name"] for n in names} == {"default", "extra"}
    finally:
        assert again.stop() == 0


def test_server_start_reads_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "development.yaml"
    config.write_text(f"""
persistence:
  numHistoryShards: 2
  defaultStore: sqlite-default
  datastores:
    sqlite-default:
      sqlite:
        databaseName: {tmp_path / "cadenza.db"}
services:
  frontend:
    rpc: {{grpcPort: 0, bindOnIP: 127.0.0.1}}
clusterMetadata:
  currentClusterName: dc-a
namespaceDefaults:
  namespaces: [default, video]
kafka: {{clusters: {{}}}}
""")
    proc = subprocess.Popen(
        [*cadenza_argv(), "server", "start", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        address = line.split("serving on ")[1].split()[0]
        names = json.loads(cadenza("n", "list", "-o", "json", address=address).stdout)
        assert {n["name"] for n in names} == {"default", "video"}
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_server_start_names_the_bad_key_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("persistence:\n  numHistoryShards: many\n  defaultStore: x\n  datastores: {}\n")
    proc = subprocess.run(
        [*cadenza_argv(), "server", "start", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert proc.returncode == 1
    assert f"{config}: persistence.numHistoryShards" in proc.stderr
    config.write_text("persistence:\n  defaultStore: c\n  datastores:\n    c:\n      cassandra: {hosts: x}\n")
    proc = subprocess.run(
        [*cadenza_argv(), "server", "start", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    # Cassandra is a supported store; a host that does not resolve is one clear line, no traceback.
    assert proc.returncode == 1, proc.stderr
    assert "cannot reach Cassandra at x" in proc.stderr and "Traceback" not in proc.stderr


def test_workflow_list_on_a_server_without_visibility_says_so() -> None:
    srv = DevServer(["--no-visibility"]).start()
    try:
        proc = cadenza("wf", "list", address=srv.address, check=False)
        assert proc.returncode == 1
        assert "visibility is not available on this server" in proc.stderr
    finally:
        assert srv.stop() == 0
