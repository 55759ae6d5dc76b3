"""Running `cadenza server start-dev` as a real subprocess, for fault, CLI and bench-like tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_READY = re.compile(r"serving on (\S+):(\d+)")


def cadenza_argv() -> list[str]:
    return [sys.executable, "-c", "from cadenza.ops.cli import main; main()"]


def env() -> dict[str, str]:
    paths = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


class DevServer:
    """A dev server subprocess; ``address`` is ready once ``start`` returns."""

    def __init__(self, args: Sequence[str] = ()) -> None:
        self.args = list(args)
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        # A file, not a pipe: a pipe nobody reads would stall the server once it fills up.
        self._log = tempfile.TemporaryFile(mode="w+")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, port: int = 0, timeout: float = 20.0) -> DevServer:
        self.proc = subprocess.Popen(
            [*cadenza_argv(), "server", "start-dev", "--port", str(port), *self.args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env(),
        )
        assert self.proc.stdout is not None
        # The server prints one line when it serves; nothing else goes to stdout.
        line = self.proc.stdout.readline()
        match = _READY.search(line)
        if not match:
            self.proc.kill()
            self.proc.wait(timeout)
            raise RuntimeError(f"dev server did not start: {line!r}\n{self.stderr()[-3000:]}")
        self.port = int(match.group(2))
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait: returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def stderr(self) -> str:
        self._log.seek(0)
        return self._log.read()
