"""Time the decode of a workflow task as a server sends it, by each way a reader can take.

A server writes each message in the oldest released version that holds it (so older clients read
it); a workflow task without a query or update is written in version 4 of
``PollWorkflowTaskQueueResponse``, which the current schema extends inside a nested record. The
three ways, timed in one run: the fill (read as written, added fields given their defaults: what
``cadenza.schemas.api.decode`` does), Avro's schema resolution (what it did before), and a message
written with the current schema (no version difference at all), for scale.

Run: ``.venv/bin/python bench/api_decode_bench.py [--n N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from cadenza.schemas import api
from cadenza.schemas.api import convert as cv
from cadenza.schemas.codec import default_registry
from cadenza.schemas.registry import read_body
from cadenza.schemas.service import PollWorkflowTaskResponse, WorkflowExecution

MESSAGE = "PollWorkflowTaskQueueResponse"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="decodes per timing")
    parser.add_argument("--rounds", type=int, default=7, help="timings per way (the median is shown)")
    args = parser.parse_args()

    task = PollWorkflowTaskResponse(
        b"token-" * 10, WorkflowExecution("order-123", "run-456"), "OrderWorkflow", "default", 1, 3, [], None
    )
    record = {"task": cv.workflow_task_to_record(task)}
    as_sent = api.encode(MESSAGE, record)
    current = api.schema(MESSAGE)
    writer = default_registry().writer_of(as_sent)
    as_current = default_registry().encode(current.name, record)

    ways: dict[str, Callable[[], object]] = {
        f"fill (v{writer.version} as sent)": lambda: api.decode(MESSAGE, as_sent),
        f"resolution (v{writer.version} as sent)": lambda: read_body(as_sent, writer, current),
        f"current schema (v{current.version})": lambda: api.decode(MESSAGE, as_current),
    }
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, decode in ways.items():  # interleaved: a change of machine load hits every way
            t0 = time.perf_counter()
            for _ in range(args.n):
                decode()
            timings[name].append((time.perf_counter() - t0) / args.n * 1e6)
    for name, values in timings.items():
        print(f"{name:32} {statistics.median(values):6.1f} us per decode")


if __name__ == "__main__":
    main()
