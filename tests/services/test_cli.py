"""`cadenza dev services` commands against the running servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from cadenza.ops.devservices.cli import services
from cadenza.ops.devservices.manager import ServiceManager, is_alive
from cadenza.ops.devservices.services import probe_kafka

CADENZA = [sys.executable, "-c", "from cadenza.ops.cli import main; main()"]


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(services, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "logs"):
        assert command in result.output
    assert "19092" in result.output


DEFAULT = ("kafka", "cassandra", "elasticsearch")


def test_status_json_reports_all_three_ready(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int], elasticsearch_url: str
) -> None:
    result = CliRunner().invoke(services, ["status", "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["service"]: row for row in json.loads(result.output)}
    # The default set; a Jaeger or Prometheus started by name is listed too while it runs.
    assert {"kafka", "cassandra", "elasticsearch"} <= set(rows) <= {*DEFAULT, "jaeger", "prometheus"}
    for row in (rows[name] for name in DEFAULT):
        assert row["alive"] and row["ready"] and isinstance(row["pid"], int)
    assert rows["kafka"]["address"] == kafka_bootstrap


def test_status_table_through_the_installed_command(kafka_bootstrap: str) -> None:
    proc = subprocess.run(
        [*CADENZA, "dev", "services", "status"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "PID", "ALIVE", "READY", "ADDRESS"]
    assert any(line.startswith("kafka") and "yes" in line for line in lines)


def test_logs_prints_the_tail(kafka_bootstrap: str) -> None:
    result = CliRunner().invoke(services, ["logs", "kafka", "-n", "5"])
    assert result.exit_code == 0
    assert 0 < len(result.output.splitlines()) <= 5


def test_up_is_a_no_op_when_everything_is_ready(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int], elasticsearch_url: str
) -> None:
    before = {s.service: s.pid for s in ServiceManager().status(probe=False)}
    proc = subprocess.run(
        [*CADENZA, "dev", "services", "up", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["elasticsearch"] == elasticsearch_url
    assert "already running" in proc.stderr
    assert {s.service: s.pid for s in ServiceManager().status(probe=False)} == before


@pytest.mark.slow
def test_kill_9_then_up_brings_kafka_back(kafka_bootstrap: str) -> None:
    record = ServiceManager().record("kafka")
    assert record is not None
    os.kill(record.pid, signal.SIGKILL)
    for _ in range(100):
        if not is_alive(record):
            break
        time.sleep(0.1)
    assert not is_alive(record)
    proc = subprocess.run(
        [*CADENZA, "dev", "services", "up", "kafka"], capture_output=True, text=True, check=False, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    assert "stale PID file" in proc.stderr
    fresh = ServiceManager().record("kafka")
    assert fresh is not None and fresh.pid != record.pid and is_alive(fresh)
    assert probe_kafka(kafka_bootstrap, 10)
