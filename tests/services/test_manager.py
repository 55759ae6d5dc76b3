"""ServiceManager behaviour that needs no JVM: deadlines, stale PID files, busy ports, stopping."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from cadenza.ops.devservices import manager as manager_mod
from cadenza.ops.devservices.manager import PidRecord, ServiceError, ServiceManager, is_alive, port_busy
from cadenza.ops.devservices.services import Service


@dataclass(frozen=True)
class Sleeper(Service):
    """A stand-in process (not a server) for exercising the manager's own logic."""

    name: str = "sleeper"
    port: int = 0
    ignore_term: bool = False

    def prepare(self, dist: Path, run_dir: Path) -> list[str]:
        code = "import signal, time\n"
        if self.ignore_term:
            code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        code += "print('sleeper booting', flush=True)\ntime.sleep(120)\n"
        return [sys.executable, "-c", code]

    def probe(self, timeout: float = 3.0) -> bool:
        return False

    @property
    def ports(self) -> list[int]:
        return [self.port] if self.port else []


def _manager(tmp_path: Path, service: Service, monkeypatch: pytest.MonkeyPatch) -> ServiceManager:
    monkeypatch.setattr(manager_mod.resolve, "resolve", lambda name, **_: tmp_path / "dist")
    return ServiceManager({service.name: service}, tmp_path, progress=lambda _m: None, probe_interval=0.1)


def test_deadline_reports_log_tail_and_stops_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr = _manager(tmp_path, Sleeper(), monkeypatch)
    with pytest.raises(ServiceError) as info:
        mgr.up(timeout=1.5)
    assert "not ready" in info.value.failures["sleeper"]
    assert "sleeper booting" in info.value.logs["sleeper"]
    assert mgr.record("sleeper") is None
    assert not any(s.alive for s in mgr.status(probe=False))


def test_down_escalates_to_sigkill_after_grace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = _manager(tmp_path, Sleeper(ignore_term=True), monkeypatch)
    record = mgr._start("sleeper", tmp_path)
    assert is_alive(record)
    assert mgr.down(grace=0.5) == ["sleeper"]
    assert not is_alive(record)
    assert not mgr.pid_file("sleeper").exists()


def test_stale_pid_file_is_reported_dead_and_cleaned(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    mgr = ServiceManager({"sleeper": Sleeper()}, tmp_path, progress=lambda _m: None)
    mgr.pid_file("sleeper").parent.mkdir(parents=True)
    mgr.pid_file("sleeper").write_text(
        json.dumps({"pid": proc.pid, "start_ticks": 1, "address": "x", "started_at": 0.0})
    )
    [row] = mgr.status(probe=False)
    assert row.pid == proc.pid and not row.alive and not row.ready
    assert mgr.down() == []
    assert not mgr.pid_file("sleeper").exists()


def test_reused_pid_is_never_treated_as_ours() -> None:
    # Our own PID with a different start time stands for a PID recycled by an unrelated program.
    assert not is_alive(PidRecord(os.getpid(), 1, "x", 0.0))


def test_busy_port_is_named_in_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_busy(port)
        mgr = _manager(tmp_path, Sleeper(port=port), monkeypatch)
        with pytest.raises(ServiceError) as info:
            mgr.up(timeout=5)
    message = info.value.failures["sleeper"]
    assert f"port {port}" in message and "already in use" in message
    assert mgr.record("sleeper") is None


def test_fixture_fails_not_skips_when_server_is_absent(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent("""
        def test_needs_kafka(kafka_bootstrap):
            pass
    """)
    )
    env = {**os.environ, "CADENZA_TEST_KAFKA": "127.0.0.1:1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "cadenza.ops.devservices.pytest_plugin",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_inner.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout
    assert "1 error" in proc.stdout or "1 failed" in proc.stdout
    assert "skipped" not in proc.stdout
    assert "cadenza dev services up" in proc.stdout


def test_kafka_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka's storage tool reads an id that starts with '-' as an option; one draw in 64 did."""
    import base64
    import uuid

    from cadenza.ops.devservices import services as services_mod

    dash_first = uuid.UUID(bytes=b"\xf8" + b"\x00" * 15)  # base64 of 0xF8... begins with '-'
    assert base64.urlsafe_b64encode(dash_first.bytes).startswith(b"-")
    plain = uuid.UUID(bytes=b"\x10" * 16)
    draws = iter([dash_first, dash_first, plain])
    monkeypatch.setattr(services_mod.uuid, "uuid4", lambda: next(draws))
    cluster_id = services_mod.new_kafka_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).decode().rstrip("=")
    monkeypatch.undo()
    for _ in range(2000):
        cluster_id = services_mod.new_kafka_cluster_id()
        assert not cluster_id.startswith("-") and len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
