"""Kill a development service with SIGKILL and restart it on the same data, for fault tests.

`cadenza dev services up` starts every server on a fresh directory (a new empty cluster), so a test of
"killed and restarted" restarts the recorded command in the same run directory instead, and records
the new PID the way `up` does so `cadenza dev services down` still stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from cadenza.ops.devservices.manager import PidRecord, ServiceManager, is_alive, process_start_ticks


def kill_service(manager: ServiceManager, name: str) -> PidRecord:
    record = manager.record(name)
    if record is None or not is_alive(record):
        pytest.fail(
            f"{name} was not started by `cadenza dev services up {name}` (no live PID file)", pytrace=False
        )
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(record), f"{name} pid {record.pid} survived SIGKILL"
    return record


def restart_service(
    manager: ServiceManager, name: str, old: PidRecord, ready: Callable[[], bool], timeout: float = 120
) -> None:
    run_dir = manager.run_dir(name)
    command = (run_dir / "command.txt").read_text(encoding="utf-8").split()
    with manager.log_file(name).open("ab") as log:
        proc = subprocess.Popen(
            command,
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record = PidRecord(proc.pid, process_start_ticks(proc.pid) or 0, old.address, time.time())
    manager.pid_file(name).write_text(record.to_json(), encoding="utf-8")
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"restarted {name} exited:\n{manager.logs(name, 40)}"
        assert time.monotonic() < deadline, f"restarted {name} did not answer within {timeout:g} s"
        time.sleep(0.5)
