"""Time encode_events/decode_events on a typical 10,000-event history.

The history is what an activity-heavy workflow produces: a start, then rounds of workflow task
scheduled/started/completed followed by activity scheduled/started/completed, with ~50-byte JSON
payloads. Run: ``.venv/bin/python bench/codec_bench.py [--events N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from cadenza.schemas import EventType, HistoryEvent, decode_events, encode_events

JSON_META = {"encoding": b"json/plain"}


def payload(value: Any) -> dict[str, Any]:
    return {"metadata": JSON_META, "data": json.dumps(value).encode()}


def typical_history(n: int) -> list[HistoryEvent]:
    """``n`` events: started, then repeated workflow-task and activity rounds."""
    t0 = 1_700_000_000_000_000
    events: list[HistoryEvent] = []

    def add(et: EventType, attributes: dict[str, Any]) -> int:
        event_id = len(events) + 1
        events.append(HistoryEvent(event_id, t0 + event_id * 1000, et, 1, 1000 + event_id, attributes))
        return event_id

    add(
        EventType.WORKFLOW_EXECUTION_STARTED,
        {
            "workflow_type": "OrderWorkflow",
            "task_queue": "orders",
            "input": [payload({"order_id": "ord-000123", "customer": "c-42", "total": 1999})],
            "workflow_run_timeout_ms": 3_600_000,
            "workflow_task_timeout_ms": 10_000,
            "original_execution_run_id": "run-1",
            "first_execution_run_id": "run-1",
            "identity": "client@h1",
            "attempt": 1,
            "request_id": "req-1",
        },
    )
    i = 0
    while len(events) < n:
        i += 1
        sched = add(
            EventType.WORKFLOW_TASK_SCHEDULED,
            {"task_queue": "orders", "start_to_close_timeout_ms": 10_000, "attempt": 1},
        )
        started = add(
            EventType.WORKFLOW_TASK_STARTED,
            {"scheduled_event_id": sched, "identity": "worker-1@h2", "request_id": f"r{i}"},
        )
        completed = add(
            EventType.WORKFLOW_TASK_COMPLETED,
            {"scheduled_event_id": sched, "started_event_id": started, "identity": "worker-1@h2"},
        )
        act = add(
            EventType.ACTIVITY_TASK_SCHEDULED,
            {
                "activity_id": str(i),
                "activity_type": "charge_card",
                "task_queue": "orders",
                "input": [payload({"order_id": "ord-000123", "step": i, "amount": 1999})],
                "start_to_close_timeout_ms": 30_000,
                "workflow_task_completed_event_id": completed,
                "retry_policy": {
                    "initial_interval_ms": 1000,
                    "backoff_coefficient": 2.0,
                    "maximum_interval_ms": 60_000,
                    "maximum_attempts": 5,
                    "non_retryable_error_types": [],
                },
            },
        )
        act_started = add(
            EventType.ACTIVITY_TASK_STARTED,
            {"scheduled_event_id": act, "identity": "worker-1@h2", "request_id": f"a{i}", "attempt": 1},
        )
        add(
            EventType.ACTIVITY_TASK_COMPLETED,
            {
                "result": [payload({"charged": True, "auth": f"auth-{i:08d}", "ms": 12})],
                "scheduled_event_id": act,
                "started_event_id": act_started,
                "identity": "worker-1@h2",
            },
        )
    return events[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    events = typical_history(args.events)
    data = encode_events(events)
    assert len(decode_events(data)) == len(events)
    enc, dec = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        data = encode_events(events)
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        decode_events(data)
        dec.append(time.perf_counter() - t)
    total = [a + b for a, b in zip(enc, dec, strict=True)]
    print(
        f"{args.events} events, {len(data)} bytes ({len(data) / args.events:.0f} B/event), {args.repeat} runs"
    )
    for label, xs in (("encode", enc), ("decode", dec), ("encode+decode", total)):
        print(f"  {label:14s} median {statistics.median(xs) * 1e3:7.2f} ms   best {min(xs) * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
