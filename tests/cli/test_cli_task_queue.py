"""`cadenza task-queue describe` and the ``DescribeTaskQueue`` call behind it, over gRPC against a
real dev server whose worker (``rpc.fault_app``) polls queue ``faults``."""

from __future__ import annotations

import asyncio
import time

import pytest
from rpc.devserver import DevServer

from cadenza.client import Client
from cadenza.sdk.exceptions import RPCError

from .test_cli import QUEUE, as_json, invoke


def test_describe_lists_the_workers_polling_with_their_sticky_queue(server: DevServer) -> None:
    # A run gives the worker's sticky queue its first task: its sticky polls then show on `faults`.
    invoke(server, "wf", "run", "-t", QUEUE, "--wt", "ThreeSteps", "-w", "tq-1", "-i", '"tq-1"')
    before = time.time_ns() // 1000
    out = as_json(invoke(server, "task-queue", "describe", "--task-queue", QUEUE, "-o", "json"))
    assert out["task_queue"] == QUEUE
    [wf] = out["workflow"]["pollers"]
    [act] = out["activity"]["pollers"]
    assert wf["identity"] == act["identity"] and f":{QUEUE}:" in wf["identity"]
    assert wf["sticky_task_queue"].startswith(f"{QUEUE}:sticky:")
    assert act["sticky_task_queue"] == ""
    # Polls are long: the last one began within the poll timeout (and the expiry) before now.
    assert before - 300_000_000 < wf["last_access_time"] <= time.time_ns() // 1000
    assert out["workflow"]["backlog_count_hint"] == 0

    only = as_json(
        invoke(server, "tq", "describe", "-t", QUEUE, "--task-queue-type", "activity", "-o", "json")
    )
    assert set(only) == {"task_queue", "activity"}

    table = invoke(server, "task-queue", "describe", "-t", QUEUE).stdout
    assert "IDENTITY" in table and "STICKY QUEUE" in table and wf["identity"] in table
    assert wf["sticky_task_queue"] in table and "Backlog in memory: workflow 0, activity 0" in table


def test_a_queue_nobody_polls_has_no_pollers_and_bad_input_is_refused(server: DevServer) -> None:
    out = as_json(invoke(server, "task-queue", "describe", "-t", "nobody-polls-this", "-o", "json"))
    assert out["workflow"] == {"pollers": [], "backlog_count_hint": 0}
    assert "none seen" in invoke(server, "task-queue", "describe", "-t", "nobody-polls-this").stdout
    assert "--task-queue" in invoke(server, "task-queue", "describe", ok=False).stderr
    bad = invoke(server, "task-queue", "describe", "-t", QUEUE, "--task-queue-type", "timer", ok=False)
    assert "timer" in bad.stderr
    missing = invoke(server, "task-queue", "describe", "-t", QUEUE, "--ns", "no-such-ns", ok=False)
    assert "no-such-ns" in missing.stderr

    async def raw_call() -> None:
        client = await Client.connect(server.address)
        service = client.service
        for queue, kind, words in (
            (QUEUE, "timer", ["task_queue_type", "workflow or activity", "'timer'"]),
            ("", "workflow", ["task_queue is required"]),
            ("q" * 1001, "workflow", ["1001", "limit is 1000"]),
        ):
            with pytest.raises(RPCError) as e:
                await service.describe_task_queue("default", queue, kind)  # type: ignore[attr-defined]
            assert e.value.status == "INVALID_ARGUMENT"
            assert all(w in e.value.message for w in words), e.value.message

    asyncio.run(raw_call())
