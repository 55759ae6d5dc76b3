"""Starting, watching and stopping the development servers: the API behind `cadenza dev services`.

State lives in the cache directory (see `resolve.cache_home`):

    run/<service>.pid       JSON: pid, the process start time (to tell a reused PID apart), address
    run/<service>/          fresh for every start: config, data, tmp, service.log (stdout+stderr)

Only PIDs recorded there are ever signalled, and only while their start time still matches.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from cadenza.ops.devservices import resolve
from cadenza.ops.devservices.services import LOOPBACK, SERVICES, Service

Clock = Callable[[], float]
Sleep = Callable[[float], None]
Progress = Callable[[str], None]

DEFAULT_TIMEOUT = 180.0
DEFAULT_GRACE = 20.0
LOG_NAME = "service.log"


def stderr_progress(message: str) -> None:
    print(f"[devservices] {message}", file=sys.stderr, flush=True)


class ServiceError(RuntimeError):
    """Some services could not be started; `failures` maps each to the reason, `logs` to its log tail."""

    def __init__(self, failures: Mapping[str, str], logs: Mapping[str, str] | None = None) -> None:
        self.failures = dict(failures)
        self.logs = dict(logs or {})
        super().__init__("; ".join(f"{name}: {why}" for name, why in self.failures.items()))


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int
    address: str
    started_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> PidRecord:
        data = json.loads(text)
        return PidRecord(
            int(data["pid"]), int(data["start_ticks"]), str(data["address"]), float(data["started_at"])
        )


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    pid: int | None
    alive: bool
    address: str
    ready: bool
    ready_after: float | None = None


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def reap(pid: int) -> None:
    """Collect a child that has exited so it does not linger as a zombie (no-op for non-children)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def is_alive(record: PidRecord) -> bool:
    reap(record.pid)
    return process_start_ticks(record.pid) == record.start_ticks


def port_busy(port: int, host: str = LOOPBACK) -> bool:
    """True when something listens on the port (SO_REUSEADDR ignores sockets left in TIME_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def port_owner(port: int) -> str:
    """Best-effort 'name (pid N)' of the listener, from `ss`; empty when unknown."""
    ss = shutil.which("ss")
    if ss is None:
        return ""
    out = subprocess.run(
        [ss, "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f"{match.group(1)} (pid {match.group(2)})" if match else ""


def rss_bytes(pid: int) -> int:
    """Resident set size of a process from /proc/PID/status (VmRSS), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max(lines, 1) * 400))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServiceManager:
    """Brings the development servers up and down; shared by the CLI, the pytest plugin and bench/."""

    def __init__(
        self,
        services: Mapping[str, Service] | None = None,
        home: Path | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        progress: Progress = stderr_progress,
        probe_interval: float = 1.0,
    ) -> None:
        self.services = dict(services or SERVICES)
        self.home = home or resolve.cache_home()
        self.clock = clock
        self.sleep = sleep
        self.progress = progress
        self.probe_interval = probe_interval
        self._lock = threading.Lock()

    # -- paths and records -------------------------------------------------------------------------

    def names(self, names: Iterable[str] | None = None, *, running_too: bool = False) -> list[str]:
        """The named services; none named: the default set (with ``running_too``, plus any other
        service that has a PID file, so `down` and `status` also see a Jaeger started by name)."""
        chosen = list(names or [])
        if not chosen:
            chosen = [n for n, s in self.services.items() if s.in_default_set]
            if running_too:
                chosen += [n for n in self.services if n not in chosen and self.pid_file(n).exists()]
        unknown = [n for n in chosen if n not in self.services]
        if unknown:
            raise ValueError(f"unknown service(s): {', '.join(unknown)}; known: {', '.join(self.services)}")
        return list(dict.fromkeys(chosen))

    def run_dir(self, name: str) -> Path:
        return self.home / "run" / name

    def pid_file(self, name: str) -> Path:
        return self.home / "run" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.run_dir(name) / LOG_NAME

    def record(self, name: str) -> PidRecord | None:
        try:
            return PidRecord.from_json(self.pid_file(name).read_text())
        except (OSError, ValueError, KeyError):
            return None

    def logs(self, name: str, lines: int = 50) -> str:
        self.names([name])
        return tail(self.log_file(name), lines)

    # -- status ------------------------------------------------------------------------------------

    def status(self, names: Iterable[str] | None = None, *, probe: bool = True) -> list[ServiceStatus]:
        result = []
        for name in self.names(names, running_too=True):
            service = self.services[name]
            rec = self.record(name)
            alive = rec is not None and is_alive(rec)
            ready = alive and probe and service.probe()
            result.append(ServiceStatus(name, rec.pid if rec else None, alive, service.address, ready))
        return result

    # -- up ----------------------------------------------------------------------------------------

    def up(
        self, names: Iterable[str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[ServiceStatus]:
        """Start the named services (all by default) in parallel and wait until each really answers.

        A service already running and ready is left alone; one running but still booting is waited
        for; a stale PID file is removed. Raises ServiceError naming every service that failed.
        """
        chosen = self.names(names)
        to_start: list[str] = []
        failures: dict[str, str] = {}
        for name in chosen:
            rec = self.record(name)
            if rec is not None and is_alive(rec):
                self.progress(f"{name}: already running (pid {rec.pid})")
                continue
            if rec is not None:
                self.progress(f"{name}: removing stale PID file (pid {rec.pid} is gone)")
                self.pid_file(name).unlink(missing_ok=True)
            busy = [p for p in self.services[name].ports if port_busy(p)]
            if busy:
                owner = port_owner(busy[0])
                failures[name] = (
                    f"port {busy[0]} on {LOOPBACK} is already in use by another process"
                    f"{' ' + owner if owner else ''}; stop it or free the port"
                )
                continue
            to_start.append(name)
        if failures:
            raise ServiceError(failures)

        # Resolution is one at a time: Maven's local repository has no locking between processes.
        dists: dict[str, Path] = {}
        for name in to_start:
            service = self.services[name]
            try:
                dists[name] = service.resolve_dist(self.home, self.progress)
            except Exception as exc:
                failures[name] = str(exc)
            else:
                # A Go build takes minutes: something may have taken a port meanwhile.
                busy = [p for p in service.ports if port_busy(p)]
                if busy:
                    failures[name] = f"port {busy[0]} on {LOOPBACK} was taken while it was being built"
        if failures:
            raise ServiceError(failures)
        # The deadline is for starting: resolving jars or building a binary may take much longer.
        deadline = self.clock() + timeout

        with ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
            futures = {
                name: pool.submit(self._start_and_wait, name, dists.get(name), deadline) for name in chosen
            }
            statuses: list[ServiceStatus] = []
            for name, future in futures.items():
                try:
                    statuses.append(future.result())
                except Exception as exc:
                    failures[name] = str(exc)
        if failures:
            started_here = [n for n in failures if n in to_start]
            logs = {n: self.logs(n, 40) for n in failures}
            # A half-started server would only confuse the next `up`; its log stays for `logs`.
            self.down(started_here)
            raise ServiceError(failures, logs)
        return statuses

    def _start(self, name: str, dist: Path) -> PidRecord:
        service = self.services[name]
        run_dir = self.run_dir(name)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        command = service.prepare(dist, run_dir)
        (run_dir / "command.txt").write_text(" ".join(command) + "\n", encoding="utf-8")
        with self.log_file(name).open("ab") as log:
            # A new session: Ctrl-C in the terminal that ran `up` must not take the servers down.
            proc = subprocess.Popen(
                command,
                cwd=run_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ticks = process_start_ticks(proc.pid)
        record = PidRecord(proc.pid, ticks or 0, service.address, time.time())
        self.pid_file(name).write_text(record.to_json(), encoding="utf-8")
        self.progress(f"{name}: started pid {proc.pid}, log {self.log_file(name)}")
        return record

    def _start_and_wait(self, name: str, dist: Path | None, deadline: float) -> ServiceStatus:
        service = self.services[name]
        began = self.clock()
        record = self._start(name, dist) if dist is not None else self.record(name)
        if record is None:
            raise RuntimeError("PID file vanished while waiting")
        last_note = began
        while True:
            if not is_alive(record):
                raise RuntimeError(f"process {record.pid} exited during start-up")
            if service.probe():
                took = self.clock() - began
                self.progress(f"{name}: ready at {service.address} after {took:.1f}s")
                return ServiceStatus(name, record.pid, True, service.address, True, took)
            now = self.clock()
            if now >= deadline:
                raise RuntimeError(f"not ready at {service.address} within the deadline ({now - began:.0f}s)")
            if now - last_note >= 15:
                self.progress(f"{name}: still starting ({now - began:.0f}s)")
                last_note = now
            self.sleep(self.probe_interval)

    # -- down --------------------------------------------------------------------------------------

    def down(self, names: Iterable[str] | None = None, *, grace: float = DEFAULT_GRACE) -> list[str]:
        """Stop the recorded processes: SIGTERM, then SIGKILL after `grace` seconds. Returns those stopped."""
        running: dict[str, PidRecord] = {}
        for name in self.names(names, running_too=True):
            rec = self.record(name)
            if rec is None:
                continue
            if is_alive(rec):
                running[name] = rec
                self.progress(f"{name}: stopping pid {rec.pid}")
                self._signal(rec, signal.SIGTERM)
            else:
                self.pid_file(name).unlink(missing_ok=True)
        deadline = self.clock() + grace
        while any(is_alive(r) for r in running.values()) and self.clock() < deadline:
            self.sleep(0.2)
        for name, rec in running.items():
            if is_alive(rec):
                self.progress(f"{name}: pid {rec.pid} ignored SIGTERM for {grace:.0f}s; sending SIGKILL")
                self._signal(rec, signal.SIGKILL)
        kill_deadline = self.clock() + 10
        while any(is_alive(r) for r in running.values()) and self.clock() < kill_deadline:
            self.sleep(0.1)
        for name in running:
            self.pid_file(name).unlink(missing_ok=True)
            # The ports close with the process; waiting here means `down` returns with them free.
            ports = self.services[name].ports
            port_deadline = self.clock() + 5
            while any(port_busy(p) for p in ports) and self.clock() < port_deadline:
                self.sleep(0.1)
        return list(running)

    def _signal(self, record: PidRecord, sig: signal.Signals) -> None:
        # Re-checked immediately before signalling so a PID reused by another program is never hit.
        with self._lock:
            if is_alive(record):
                try:
                    os.kill(record.pid, sig)
                except ProcessLookupError:
                    pass
