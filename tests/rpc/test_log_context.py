"""Structured logs: with ``--log-format json`` a line logged while the server handles a call about a
run names the namespace, workflow id, run id, shard id and cluster; the text format stays as it was."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from e2e.workflows import Approval

from cadenza.engine import logcontext
from cadenza.engine.history.queues import log as queue_log
from cadenza.ops import logsetup
from cadenza.worker import Worker

from .conftest import GrpcEnvironment, run_in_grpc_env

probe = logging.getLogger("cadenza.test.probe")


class _Captured:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[_Captured]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield _Captured(capsys)
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    logcontext.enable(False)
    logcontext.set_cluster("")


def _signal_and_log(env: GrpcEnvironment, workflow_id: str) -> Any:
    """Starts an Approval run, signals it through a frontend that logs once the signal is written."""
    frontend = env.host.frontend
    original = frontend.signal_workflow_execution

    async def logging_signal(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        probe.warning("signal written")
        return result

    frontend.signal_workflow_execution = logging_signal

    async def scenario() -> str:
        async with Worker(env.client, task_queue="logs", workflows=[Approval]):
            handle = await env.client.start_workflow(Approval.run, 1, id=workflow_id, task_queue="logs")
            await handle.signal(Approval.approve, "ann")
            await handle.result()
            return handle.first_run_id or ""

    return scenario()


def test_json_lines_about_a_run_carry_its_ids(stderr: _Captured) -> None:
    logsetup.configure("json", "warning")  # before the server starts, as the CLI does
    logcontext.set_cluster("active")

    async def scenario(env: GrpcEnvironment) -> str:
        return await _signal_and_log(env, "logs-json")

    run_id = run_in_grpc_env(scenario)
    lines = [json.loads(line) for line in stderr.getvalue().splitlines() if line.startswith("{")]
    line = next(x for x in lines if x["msg"] == "signal written")
    assert line["namespace"] == "default"
    assert line["workflow_id"] == "logs-json"
    assert line["run_id"] == run_id
    assert isinstance(line["shard_id"], int)
    assert line["cluster"] == "active"
    assert line["level"] == "warning" and line["logger"] == "cadenza.test.probe"


def test_text_format_is_unchanged_and_binds_nothing(stderr: _Captured) -> None:
    logsetup.configure("text", "warning")

    async def scenario(env: GrpcEnvironment) -> str:
        return await _signal_and_log(env, "logs-text")

    run_in_grpc_env(scenario)
    assert not logcontext.enabled()
    lines = stderr.getvalue().splitlines()
    line = next(x for x in lines if "signal written" in x)
    assert line.endswith("WARNING cadenza.test.probe: signal written")
    assert "logs-text" not in line
    # Quiet: nothing else at the default level for a run that went well.
    assert [x for x in lines if "cadenza." in x and "signal written" not in x] == []


def test_queue_lines_name_the_shard_and_run(stderr: _Captured) -> None:
    """A task's own asyncio task binds its shard and run; the caller's context is left alone."""
    logsetup.configure("json", "warning")
    import asyncio

    async def task_body() -> None:
        logcontext.bind(shard_id=3, namespace_id="ns-id", workflow_id="wf", run_id="r1")
        queue_log.warning("timer task failed")

    async def main() -> None:
        await asyncio.create_task(task_body())
        queue_log.warning("loop line")

    asyncio.run(main())
    first, second = (json.loads(x) for x in stderr.getvalue().splitlines())
    assert (first["shard_id"], first["namespace_id"], first["workflow_id"], first["run_id"]) == (
        3,
        "ns-id",
        "wf",
        "r1",
    )
    assert "workflow_id" not in second and "shard_id" not in second
