"""A dev server subprocess with a worker subprocess, shared by the CLI tests of a module."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from rpc.devserver import DevServer, env


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    srv = DevServer().start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "rpc.fault_app", srv.address, "worker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env(),
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().startswith("READY")
    try:
        yield srv
    finally:
        worker.kill()
        worker.wait()
        assert srv.stop() == 0, srv.stderr()[-3000:]
