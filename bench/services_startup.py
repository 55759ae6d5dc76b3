"""Cold starts of the development servers: wall time until all three answer, their memory, and
how often a start fails.

    .venv/bin/python bench/services_startup.py [--runs N] [--keep] [--home DIR] [--port-offset N]
        [--fresh] [--pause-file PATH]

Each run stops the servers this bench started, starts Kafka, Cassandra and Elasticsearch in
parallel through `ServiceManager` (jars must already be resolved, so Maven is not measured), and
prints one line with the wall time to all-ready and the summed VmRSS of the three JVMs. A failed
start is printed with each failing service's log tail, its run directory is kept under
`<home>/failures/run-<i>/`, and the runs go on. The end prints `starts: N, failed: K` and the
spread of ready times per service.

`--home` and `--port-offset` give a second test bed beside the one `cadenza dev services up` runs
(its own PID files, data and logs, every port shifted), so the shared servers are never touched;
the new home reuses the resolved jars of the default cache through symlinks. `--fresh` removes
each service's run directory (data, config, logs) before every start, so first-start paths such
as Kafka's storage format run every time, as on a new machine. Copy the figures by hand; the
servers are stopped afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

from cadenza.ops.devservices import resolve
from cadenza.ops.devservices.manager import ServiceError, ServiceManager, rss_bytes
from cadenza.ops.devservices.services import DEFAULT_SERVICES, SERVICES, Service

MIB = 1024 * 1024


def shifted(service: Service, offset: int) -> Service:
    """The same server with every port moved by `offset`."""
    extra = {key: port + offset for key, port in service.extra_ports.items()}
    return dataclasses.replace(service, port=service.port + offset, extra_ports=extra)


def share_jars(home: Path, names: list[str]) -> None:
    """Point the new home's distributions at the default cache's (resolving there first if needed)."""
    shared = resolve.cache_home()
    for name in names:
        source = resolve.resolve(name, home=shared, arrange=SERVICES[name].arrange)
        target = resolve.dist_dir(name, home)
        if target.resolve() != source.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            target.symlink_to(source, target_is_directory=True)


def wait_while_paused(pause_file: Path | None) -> None:
    # Someone is benchmarking: a start measured now would only measure their load.
    announced = False
    while pause_file is not None and pause_file.exists():
        if not announced:
            print(f"paused while {pause_file} exists", flush=True)
            announced = True
        time.sleep(15)


def one_run(manager: ServiceManager, run: int, fresh: bool, ready: dict[str, list[float]]) -> bool:
    manager.down()
    if fresh:
        for name in manager.names():
            shutil.rmtree(manager.run_dir(name), ignore_errors=True)
    began = time.monotonic()
    try:
        statuses = manager.up()
    except ServiceError as exc:
        wall = time.monotonic() - began
        print(f"services_startup run {run}: FAILED after {wall:.1f}s: {exc}", flush=True)
        kept = manager.home / "failures" / f"run-{run}"
        for name, why in exc.failures.items():
            print(f"----- {name}: {why}\n{exc.logs.get(name, '')}\n----- end of {name}", flush=True)
            if manager.run_dir(name).exists():
                shutil.copytree(manager.run_dir(name), kept / name, symlinks=True, dirs_exist_ok=True)
        return False
    wall = time.monotonic() - began
    for s in statuses:
        if s.ready_after is not None:
            ready[s.service].append(s.ready_after)
    rss = {s.service: rss_bytes(s.pid) for s in statuses if s.pid is not None}
    each = ", ".join(f"{s.service} {s.ready_after:.1f}s" for s in statuses if s.ready_after is not None)
    mem = ", ".join(f"{name} {value / MIB:.0f}" for name, value in rss.items())
    print(
        f"services_startup run {run}: all ready in {wall:.1f}s ({each}); "
        f"RSS total {sum(rss.values()) / MIB:.0f} MiB ({mem})",
        flush=True,
    )
    return True


def summary(starts: int, failed: int, ready: dict[str, list[float]]) -> str:
    lines = [f"starts: {starts}, failed: {failed}"]
    for name, times in ready.items():
        if times:
            # Inclusive: with few runs the default method extrapolates a p95 above the slowest.
            q = statistics.quantiles(times, n=20, method="inclusive") if len(times) >= 2 else times * 19
            lines.append(
                f"{name}: ready min {min(times):.1f}s, median {statistics.median(times):.1f}s, "
                f"p95 {q[18]:.1f}s, slowest {max(times):.1f}s"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the servers running afterwards")
    parser.add_argument("--home", type=Path, help="state directory of a separate test bed")
    parser.add_argument("--port-offset", type=int, default=0, help="shift every port by this much")
    parser.add_argument("--fresh", action="store_true", help="wipe each run directory before a start")
    parser.add_argument("--pause-file", type=Path, help="wait between runs while this file exists")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    names = list(DEFAULT_SERVICES)
    services = {name: shifted(SERVICES[name], args.port_offset) for name in names}
    for service in services.values():
        if not all(0 < port < 65536 for port in service.ports):
            parser.error(f"--port-offset {args.port_offset} moves {service.name} to {service.ports}")
    home = args.home.expanduser().resolve() if args.home else resolve.cache_home()
    share_jars(home, names)
    manager = ServiceManager(services, home, progress=lambda _msg: None)
    ready: dict[str, list[float]] = {name: [] for name in names}
    starts = failed = 0
    # Run in the background SIGINT is ignored; SIGTERM must still stop the servers on the way out.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    try:
        for i in range(1, args.runs + 1):
            wait_while_paused(args.pause_file)
            starts += 1
            if not one_run(manager, i, args.fresh, ready):
                failed += 1
    finally:
        if not args.keep:
            manager.down()
        print(summary(starts, failed, ready), flush=True)


if __name__ == "__main__":
    main()
