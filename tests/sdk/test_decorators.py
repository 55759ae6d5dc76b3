"""Decorator metadata and validation."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cadenza.sdk import activity, workflow
from cadenza.sdk.activity import ActivityContext, ActivityDefinition, ActivityInfo
from cadenza.sdk.workflow import QueryDefinition, SignalDefinition, WorkflowDefinition


@workflow.defn(name="Pipeline")
class Pipeline:
    @workflow.run
    async def run(self, video_id: str, formats: list[str]) -> dict[str, str]:
        return {}

    @workflow.signal
    async def approve(self, reviewer: str) -> None: ...

    @workflow.signal(name="pause-now")
    def pause(self) -> None: ...

    @workflow.query
    def progress(self) -> float:
        return 0.0


def test_definition_from_class() -> None:
    defn = WorkflowDefinition.from_class(Pipeline)
    assert defn.name == "Pipeline" and defn.cls is Pipeline
    assert list(defn.run_param_types) == [str, list[str]]
    assert defn.run_return_type == dict[str, str]
    assert set(defn.signals) == {"approve", "pause-now"}
    assert defn.signals["approve"].is_async and not defn.signals["pause-now"].is_async
    assert set(defn.queries) == {"progress"}
    assert WorkflowDefinition.from_run_fn(Pipeline.run) is defn
    assert SignalDefinition.from_fn(Pipeline.pause).name == "pause-now"
    assert QueryDefinition.from_fn(Pipeline.progress).return_type is float


def test_undecorated_class_is_refused() -> None:
    class Plain:
        pass

    with pytest.raises(ValueError, match=r"not decorated with @workflow\.defn"):
        WorkflowDefinition.from_class(Plain)


def test_every_problem_is_reported_once() -> None:
    with pytest.raises(ValueError) as info:

        @workflow.defn
        class Broken:
            def __init__(self, needed: int) -> None: ...

            @workflow.run
            def run(self) -> None: ...

            @workflow.query
            async def q(self) -> int:  # accepted, as temporalio still accepts it
                return 1

            @workflow.signal(name="s")
            def s1(self) -> None: ...

            @workflow.signal(name="s")
            def s2(self) -> None: ...

    message = str(info.value)
    assert message.startswith("Invalid workflow class ")
    assert "Broken for 3 reasons:" in message
    assert "run must be async def" in message
    assert "signal name 's' is used by both s1 and s2" in message
    assert "requires needed" in message


def test_missing_run_is_one_reason() -> None:
    with pytest.raises(
        ValueError, match=r"Invalid workflow class .*NoRun for 1 reason: no method is decorated"
    ):

        @workflow.defn
        class NoRun:
            pass


@activity.defn
async def transcode(video: str, fmt: str) -> str:
    return video + fmt


@activity.defn(name="resize-image")
def resize(path: str, width: int) -> bytes:
    return b""


def test_activity_definitions() -> None:
    a = ActivityDefinition.from_callable(transcode)
    assert (a.name, a.is_async, list(a.param_types), a.return_type) == ("transcode", True, [str, str], str)
    b = ActivityDefinition.from_callable(resize)
    assert (b.name, b.is_async, list(b.param_types), b.return_type) == (
        "resize-image",
        False,
        [str, int],
        bytes,
    )
    with pytest.raises(ValueError, match=r"not decorated with @activity\.defn"):
        ActivityDefinition.from_callable(print)
    with pytest.raises(ValueError, match="lambda needs an explicit name"):
        activity.defn(lambda: None)


def _context(heartbeats: list[Any]) -> ActivityContext:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    info = ActivityInfo(
        activity_id="1",
        activity_type="resize-image",
        attempt=2,
        task_queue="tq",
        workflow_id="wf",
        run_id="r",
        workflow_type="Pipeline",
        namespace="default",
        heartbeat_details=["half"],
        heartbeat_timeout=None,
        scheduled_time=now,
        started_time=now,
        task_token=b"t",
    )
    return ActivityContext(info=info, heartbeat=lambda details: heartbeats.append(list(details)))


def test_activity_context_functions() -> None:
    heartbeats: list[Any] = []
    ctx = _context(heartbeats)
    assert not activity.in_activity()
    with pytest.raises(RuntimeError, match="Not in an activity"):
        activity.info()
    with activity._activity_context(ctx):
        assert activity.info().attempt == 2
        activity.heartbeat("a", 1)
        assert not activity.is_cancelled()
        ctx.cancelled.set()
        assert activity.is_cancelled()
    assert heartbeats == [["a", 1]]
    assert not activity.in_activity()


def test_wait_for_cancelled_wakes_up() -> None:
    import asyncio

    ctx = _context([])

    async def body() -> None:
        token = activity._set_context(ctx)
        try:
            threading.Timer(0.01, ctx.cancelled.set).start()
            await asyncio.wait_for(activity.wait_for_cancelled(poll_interval=0.005), 2)
        finally:
            activity._current.reset(token)

    asyncio.run(body())
