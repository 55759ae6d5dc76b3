"""Versioning, side effects, local activities and upserts, on synthetic histories."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cadenza.schemas.events import Command, CommandType, EventType
from cadenza.sdk import activity, workflow
from cadenza.sdk._runtime.local_activities import LocalActivityOutcome, LocalActivityRequest
from cadenza.sdk.converter import default_converter, exception_to_failure
from cadenza.sdk.exceptions import ActivityError, ApplicationError, NondeterminismError
from cadenza.sdk.history import WorkflowHistory
from cadenza.worker import Replayer

from .history import Driver, decode

TIMEOUT = timedelta(seconds=10)


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn(name="greet_v2")
async def greet_v2(name: str) -> str:
    return f"Hi, {name}!"


@workflow.defn(name="Versioned")
class VersionedV1:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(greet, "old", start_to_close_timeout=TIMEOUT)


@workflow.defn(name="Versioned")
class VersionedV2:
    @workflow.run
    async def run(self) -> str:
        if workflow.patched("new-greeting"):
            return await workflow.execute_activity(greet_v2, "new", start_to_close_timeout=TIMEOUT)
        return await workflow.execute_activity(greet, "old", start_to_close_timeout=TIMEOUT)


@workflow.defn(name="Versioned")
class VersionedV3:
    @workflow.run
    async def run(self) -> str:
        workflow.deprecate_patch("new-greeting")
        return await workflow.execute_activity(greet_v2, "new", start_to_close_timeout=TIMEOUT)


@workflow.defn(name="Versioned")
class VersionedV4:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(greet_v2, "new", start_to_close_timeout=TIMEOUT)


def _run_to_end(cls: type) -> WorkflowHistory:
    driver = Driver(cls)
    commands = driver.step()
    activity_id = commands[-1].attributes["activity_id"]
    driver.history.activity_completed(activity_id, "done")
    driver.step()
    return WorkflowHistory("wf-1", "run-1", driver.history.events)


def _marker_names(commands: list[Command]) -> list[str]:
    return [c.attributes["marker_name"] for c in commands if c.command_type is CommandType.RECORD_MARKER]


def test_new_execution_records_the_patch_marker_and_takes_the_new_path() -> None:
    commands = Driver(VersionedV2).step()
    assert [c.command_type for c in commands] == [
        CommandType.RECORD_MARKER,
        CommandType.SCHEDULE_ACTIVITY_TASK,
    ]
    details = commands[0].attributes["details"]
    assert decode(details["patch_id"]) == ["new-greeting"]
    assert decode(details["deprecated"]) == [False]
    assert commands[1].attributes["activity_type"] == "greet_v2"


def test_history_without_the_marker_replays_the_old_path() -> None:
    Replayer(workflows=[VersionedV2]).replay_workflow(_run_to_end(VersionedV1))


def test_running_workflow_keeps_the_old_path_after_the_change() -> None:
    driver = Driver(VersionedV1)
    driver.step()
    # The worker restarts with the patched code while the activity is pending.
    driver.defn = workflow.WorkflowDefinition.from_class(VersionedV2)
    driver.instance = driver.new_instance()
    driver.history.activity_completed("1", "done")
    commands = driver.step()
    assert [c.command_type for c in commands] == [CommandType.COMPLETE_WORKFLOW_EXECUTION]


def test_history_with_the_marker_replays_the_new_path_and_after_deprecation() -> None:
    history = _run_to_end(VersionedV2)
    Replayer(workflows=[VersionedV2]).replay_workflow(history)
    Replayer(workflows=[VersionedV3]).replay_workflow(history)


def test_deprecated_patch_records_the_marker_and_tolerates_its_absence() -> None:
    commands = Driver(VersionedV3).step()
    assert _marker_names(commands) == ["core_patch"]
    assert decode(commands[0].attributes["details"]["deprecated"]) == [True]
    history = _run_to_end(VersionedV3)
    # Removing the deprecate_patch call later still replays histories holding the marker ...
    Replayer(workflows=[VersionedV4]).replay_workflow(history)
    # ... and the deprecated code replays histories recorded without any marker.
    Replayer(workflows=[VersionedV3]).replay_workflow(_run_to_end(VersionedV4))


def test_divergence_is_still_detected() -> None:
    # Deprecating while runs that took the old path remain is a mistake replay must catch.
    with pytest.raises(NondeterminismError, match="greet"):
        Replayer(workflows=[VersionedV3]).replay_workflow(_run_to_end(VersionedV1))
    # A non-deprecated marker the code no longer asks for is not silently skipped.
    with pytest.raises(NondeterminismError, match="core_patch"):
        Replayer(workflows=[VersionedV4]).replay_workflow(_run_to_end(VersionedV2))


def test_patched_is_decided_once_per_run() -> None:
    answers: list[bool] = []

    @workflow.defn(name="TwiceAsked")
    class TwiceAsked:
        @workflow.run
        async def run(self) -> None:
            answers.append(workflow.patched("p"))
            await workflow.sleep(1)
            answers.append(workflow.patched("p"))

    driver = Driver(TwiceAsked)
    first = driver.step()
    driver.history.timer_fired("1")
    second = driver.step()
    assert answers == [True, True]
    assert _marker_names(first) == ["core_patch"]
    assert _marker_names(second) == []


# -- side effects ----------------------------------------------------------------------------------

side_effect_calls: list[str] = []


@workflow.defn
class SideEffecting:
    @workflow.run
    async def run(self) -> list[Any]:
        first = workflow.side_effect(lambda: side_effect_calls.append("a") or len(side_effect_calls))
        await workflow.sleep(1)
        second = workflow.side_effect(lambda: {"n": len(side_effect_calls) * 10})
        return [first, second, str(workflow.uuid4()), workflow.random().randint(0, 10**9)]


def test_side_effect_is_recorded_once_and_read_back_on_replay() -> None:
    side_effect_calls.clear()
    driver = Driver(SideEffecting)
    first = driver.step()
    assert _marker_names(first) == ["core_side_effect"]
    driver.history.timer_fired("1")
    last = driver.step()
    result = decode(last[-1].attributes["result"])[0]
    assert result[:2] == [1, {"n": 10}]
    assert side_effect_calls == ["a"]

    # A fresh instance replays everything up to the last task and runs that task again.
    events = driver.history.events
    last_started = max(i for i, e in enumerate(events) if e.event_type is EventType.WORKFLOW_TASK_STARTED)
    replayed = driver.new_instance().activate(events[: last_started + 1])
    assert decode(replayed[-1].attributes["result"])[0] == result
    assert side_effect_calls == ["a"]


def test_side_effect_missing_from_history_is_nondeterminism() -> None:
    @workflow.defn(name="SideEffecting")
    class WithoutSideEffect:
        @workflow.run
        async def run(self) -> None:
            await workflow.sleep(1)

    driver = Driver(WithoutSideEffect)
    driver.step()
    driver.history.timer_fired("1")
    driver.history.new_wft()
    instance = Driver(SideEffecting).new_instance()
    with pytest.raises(NondeterminismError, match="side effect #1"):
        instance.activate(driver.history.events)


# -- local activities ------------------------------------------------------------------------------


@activity.defn
async def lookup(key: str) -> str:
    return key.upper()


@workflow.defn
class LocalFlow:
    @workflow.run
    async def run(self) -> str:
        first = await workflow.execute_local_activity(lookup, "a", start_to_close_timeout=TIMEOUT)
        remote = workflow.start_activity(greet, first, start_to_close_timeout=TIMEOUT)
        try:
            await workflow.execute_local_activity(lookup, "boom", start_to_close_timeout=TIMEOUT)
        except ActivityError as err:
            first += f"|{type(err.cause).__name__}:{err.cause}"
        return first + "|" + await remote


def _lookup_outcome(request: LocalActivityRequest) -> LocalActivityOutcome:
    key = default_converter().from_payloads(request.input)[0]
    if key == "boom":
        failure = exception_to_failure(ApplicationError("no such key", non_retryable=True))
        return LocalActivityOutcome(failure=failure, attempt=1, retry_state="NON_RETRYABLE_FAILURE")
    return LocalActivityOutcome(result=default_converter().to_payloads([key.upper()]), attempt=1)


def test_local_activities_keep_the_task_open_and_record_markers_in_order() -> None:
    driver = Driver(LocalFlow)
    commands, ran = driver.step_local(_lookup_outcome)
    assert [r.activity_type for r in ran] == ["lookup", "lookup"]
    assert [c.command_type for c in commands] == [
        CommandType.RECORD_MARKER,
        CommandType.SCHEDULE_ACTIVITY_TASK,
        CommandType.RECORD_MARKER,
    ]
    assert decode(commands[0].attributes["details"]["result"]) == ["A"]
    assert commands[2].attributes["failure"]["message"] == "no such key"
    driver.history.activity_completed("1", "Hello, A!")
    commands, ran = driver.step_local(_lookup_outcome)
    assert ran == []
    assert decode(commands[-1].attributes["result"]) == ["A|ApplicationError:no such key|Hello, A!"]
    history = WorkflowHistory("wf-1", "run-1", driver.history.events)
    Replayer(workflows=[LocalFlow]).replay_workflow(history)


def test_replay_reads_local_activity_markers_without_running_them() -> None:
    driver = Driver(LocalFlow)
    driver.step_local(_lookup_outcome)
    driver.history.activity_completed("1", "Hello, A!")
    driver.history.new_wft()
    instance = driver.new_instance()
    commands = instance.activate(driver.history.events)
    assert not instance.task_open
    assert instance.take_local_activities() == []
    assert decode(commands[-1].attributes["result"]) == ["A|ApplicationError:no such key|Hello, A!"]


def test_activate_refuses_new_history_while_a_task_is_open() -> None:
    driver = Driver(LocalFlow)
    driver.history.start_wft()
    instance = driver.instance
    assert instance.activate(driver.history.events) == []
    assert instance.task_open
    with pytest.raises(RuntimeError, match="resume"):
        instance.activate(driver.history.events[-1:])


# -- search attributes -----------------------------------------------------------------------------

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@workflow.defn
class Upserting:
    @workflow.run
    async def run(self) -> dict[str, Any]:
        before = dict(workflow.info().search_attributes)
        workflow.upsert_search_attributes({"CustomKeyword": "blue", "CustomDatetime": WHEN})
        after = workflow.info().search_attributes
        assert after["CustomDatetime"] == WHEN
        await asyncio.sleep(0)
        return {"before": before, "after": {k: str(v) for k, v in after.items()}}


def test_upsert_emits_the_command_and_updates_info_on_every_run() -> None:
    driver = Driver(Upserting)
    commands = driver.step()
    assert commands[0].command_type is CommandType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    encoded = commands[0].attributes["search_attributes"]
    assert encoded["CustomDatetime"]["metadata"]["type"] == b"Datetime"
    result = decode(commands[-1].attributes["result"])[0]
    assert result == {"before": {}, "after": {"CustomKeyword": "blue", "CustomDatetime": str(WHEN)}}
    Replayer(workflows=[Upserting]).replay_workflow(WorkflowHistory("wf-1", "run-1", driver.history.events))


def test_upsert_refuses_values_search_attributes_cannot_hold() -> None:
    @workflow.defn(name="BadUpsert")
    class BadUpsert:
        @workflow.run
        async def run(self) -> None:
            workflow.upsert_search_attributes({"CustomKeyword": object()})

    driver = Driver(BadUpsert)
    with pytest.raises(Exception, match="not a search attribute type"):
        driver.step()


def test_a_local_activity_abandoned_before_it_ran_records_nothing() -> None:
    @workflow.defn(name="Abandons")
    class Abandons:
        @workflow.run
        async def run(self) -> str:
            pending = asyncio.ensure_future(
                workflow.execute_local_activity(lookup, "x", start_to_close_timeout=TIMEOUT)
            )
            await asyncio.sleep(0)  # the local activity is requested ...
            pending.cancel()  # ... and given up before the worker ran it
            return "abandoned"

    driver = Driver(Abandons)
    commands, ran = driver.step_local(_lookup_outcome)
    assert ran == []
    assert [c.command_type for c in commands] == [CommandType.COMPLETE_WORKFLOW_EXECUTION]
    Replayer(workflows=[Abandons]).replay_workflow(WorkflowHistory("wf-1", "run-1", driver.history.events))


def test_a_local_activity_missing_from_history_is_nondeterminism() -> None:
    @workflow.defn(name="Versioned")
    class LooksUpFirst:
        @workflow.run
        async def run(self) -> str:
            await workflow.execute_local_activity(lookup, "x", start_to_close_timeout=TIMEOUT)
            return await workflow.execute_activity(greet, "old", start_to_close_timeout=TIMEOUT)

    with pytest.raises(NondeterminismError, match="local activity 'lookup'"):
        Replayer(workflows=[LooksUpFirst]).replay_workflow(_run_to_end(VersionedV1))
