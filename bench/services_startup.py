"""Cold start of the development servers: wall time until all three answer, and their memory.

    .venv/bin/python bench/services_startup.py [--runs N] [--keep]

Stops any running servers first, starts Kafka, Cassandra and Elasticsearch in parallel through
`ServiceManager` (jars must already be resolved, so Maven is not measured), and prints one line per
run with the wall time to all-ready and the summed VmRSS of the three JVMs right after ready.
Nothing is written to disk; copy the figures by hand. The servers are stopped afterwards unless
--keep is given.
"""

from __future__ import annotations

import argparse
import time

from cadenza.ops.devservices import resolve
from cadenza.ops.devservices.manager import ServiceManager, rss_bytes

MIB = 1024 * 1024


def one_run(manager: ServiceManager) -> str:
    manager.down()
    began = time.monotonic()
    statuses = manager.up()
    wall = time.monotonic() - began
    rss = {s.service: rss_bytes(s.pid) for s in statuses if s.pid is not None}
    each = ", ".join(f"{s.service} {s.ready_after:.1f}s" for s in statuses if s.ready_after is not None)
    mem = ", ".join(f"{name} {value / MIB:.0f}" for name, value in rss.items())
    return f"all ready in {wall:.1f}s ({each}); RSS total {sum(rss.values()) / MIB:.0f} MiB ({mem})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the servers running afterwards")
    args = parser.parse_args()
    manager = ServiceManager(progress=lambda _msg: None)
    for name, service in manager.services.items():
        # Resolve up front so a first-ever run does not time Maven downloads.
        resolve.resolve(name, home=manager.home, arrange=service.arrange)
    try:
        for i in range(args.runs):
            print(f"services_startup run {i + 1}: {one_run(manager)}", flush=True)
    finally:
        if not args.keep:
            manager.down()


if __name__ == "__main__":
    main()
