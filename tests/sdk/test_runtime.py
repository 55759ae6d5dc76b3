"""WorkflowInstance fed synthetic histories: commands, replay, resolution, errors."""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cadenza.schemas.events import CommandType, EventType
from cadenza.sdk import activity, workflow
from cadenza.sdk._runtime import StaleInstanceError
from cadenza.sdk.common import RetryPolicy
from cadenza.sdk.converter import exception_to_failure
from cadenza.sdk.exceptions import (
    ActivityError,
    ApplicationError,
    CanceledError,
    NondeterminismError,
    TimeoutError,
    TimeoutType,
    WorkflowTaskError,
)

from .history import START_US, Driver, decode

TIMEOUT = timedelta(seconds=10)


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn(name="greet_v2")
async def greet_renamed(name: str) -> str:
    return f"Hi, {name}!"


@dataclass
class Order:
    item: str
    qty: int


@activity.defn
def price(order: Order) -> float:
    return 1.5 * order.qty


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(greet, name, start_to_close_timeout=TIMEOUT)


def kinds(commands: list[Any]) -> list[CommandType]:
    return [c.command_type for c in commands]


def test_hello_world_schedules_an_activity_then_completes() -> None:
    d = Driver(Hello, "World")
    first = d.step()
    assert kinds(first) == [CommandType.SCHEDULE_ACTIVITY_TASK]
    attrs = first[0].attributes
    assert attrs["activity_type"] == "greet"
    assert attrs["activity_id"] == "1"
    assert attrs["task_queue"] == "tq"
    assert attrs["start_to_close_timeout_ms"] == 10_000
    assert attrs["schedule_to_close_timeout_ms"] == 0
    assert attrs["retry_policy"] is None
    assert decode(attrs["input"]) == ["World"]

    d.history.activity_completed("1", "Hello, World!")
    second = d.step()
    assert kinds(second) == [CommandType.COMPLETE_WORKFLOW_EXECUTION]
    assert decode(second[0].attributes["result"]) == ["Hello, World!"]


def test_activity_options_are_carried_into_the_command() -> None:
    @workflow.defn
    class WithOptions:
        @workflow.run
        async def run(self) -> float:
            return await workflow.execute_activity(
                price,
                Order("tea", 2),
                task_queue="pricing",
                schedule_to_close_timeout=timedelta(minutes=1),
                heartbeat_timeout=timedelta(seconds=3),
                retry_policy=RetryPolicy(maximum_attempts=3),
                activity_id="price-1",
            )

    d = Driver(WithOptions)
    (command,) = d.step()
    attrs = command.attributes
    assert attrs["task_queue"] == "pricing"
    assert attrs["activity_id"] == "price-1"
    assert attrs["schedule_to_close_timeout_ms"] == 60_000
    assert attrs["heartbeat_timeout_ms"] == 3_000
    assert attrs["retry_policy"]["maximum_attempts"] == 3
    assert decode(attrs["input"]) == [{"item": "tea", "qty": 2}]
    d.history.activity_completed("price-1", 3.0)
    assert decode(d.step()[0].attributes["result"]) == [3.0]


def test_replay_of_recorded_history_produces_the_same_final_commands() -> None:
    @workflow.defn
    class ThreeSteps:
        @workflow.run
        async def run(self, name: str) -> list[str]:
            out = []
            for i in range(3):
                out.append(
                    await workflow.execute_activity(greet, f"{name}{i}", start_to_close_timeout=TIMEOUT)
                )
                await asyncio.sleep(5)
            return out

    d = Driver(ThreeSteps, "x")
    d.step()
    for i in range(3):
        d.history.activity_completed(str(i + 1), f"r{i}")
        assert kinds(d.step()) == [CommandType.START_TIMER]
        d.history.advance(5)
        d.history.timer_fired(str(i + 1))
        if i < 2:
            assert kinds(d.step()) == [CommandType.SCHEDULE_ACTIVITY_TASK]
    # The current task is the last one: a fresh instance fed the whole history gives what the
    # cached one gives.
    d.history.start_wft()
    cached = d.instance.activate(d.history.events[d.instance.last_event_id :])
    replayed = d.new_instance().activate(d.history.events)
    assert kinds(replayed) == kinds(cached) == [CommandType.COMPLETE_WORKFLOW_EXECUTION]
    assert decode(replayed[0].attributes["result"]) == [["r0", "r1", "r2"]]


def test_replay_matches_the_cached_instance_at_every_step() -> None:
    d = Driver(Hello, "World")
    d.step()
    d.history.activity_completed("1", "hi")
    d.history.schedule_wft()
    d.history.start_wft()
    assert d.replay() == d.instance.activate(d.history.events[d.instance.last_event_id :])


def test_gather_schedules_three_activities_in_one_task() -> None:
    @workflow.defn
    class Fanout:
        @workflow.run
        async def run(self) -> list[str]:
            return list(
                await asyncio.gather(
                    *(workflow.execute_activity(greet, n, start_to_close_timeout=TIMEOUT) for n in "abc")
                )
            )

    d = Driver(Fanout)
    first = d.step()
    assert kinds(first) == [CommandType.SCHEDULE_ACTIVITY_TASK] * 3
    assert [c.attributes["activity_id"] for c in first] == ["1", "2", "3"]
    d.history.activity_completed("2", "B")
    assert d.step() == []
    d.history.activity_completed("1", "A")
    d.history.activity_completed("3", "C")
    final = d.step()
    assert decode(final[0].attributes["result"]) == [["A", "B", "C"]]
    d.history.start_wft()
    assert kinds(d.replay()) == []  # closed history plus a stray task: nothing more to do


def test_timer_then_fire_uses_workflow_time() -> None:
    seen: list[datetime] = []

    @workflow.defn
    class Sleeper:
        @workflow.run
        async def run(self) -> float:
            seen.append(workflow.now())
            await workflow.sleep(timedelta(seconds=30))
            seen.append(workflow.now())
            return workflow.time()

    d = Driver(Sleeper)
    (timer,) = d.step()
    assert timer.command_type is CommandType.START_TIMER
    assert timer.attributes == {"timer_id": "1", "start_to_fire_timeout_ms": 30_000}
    d.history.advance(30)
    d.history.timer_fired("1")
    (done,) = d.step()
    assert seen[0] == datetime.fromtimestamp(START_US / 1e6, UTC)
    assert seen[1] - seen[0] == timedelta(seconds=30)
    assert decode(done.attributes["result"]) == [START_US / 1e6 + 30]


def test_zero_sleep_needs_no_timer_and_subsecond_rounds_up() -> None:
    @workflow.defn
    class Tiny:
        @workflow.run
        async def run(self) -> None:
            await asyncio.sleep(0)
            await workflow.sleep(0)
            await asyncio.sleep(0.0004)

    d = Driver(Tiny)
    (timer,) = d.step()
    assert timer.attributes["start_to_fire_timeout_ms"] == 1


def test_wait_for_cancels_its_timer_when_the_activity_wins() -> None:
    @workflow.defn
    class Race:
        @workflow.run
        async def run(self) -> str:
            return await asyncio.wait_for(
                workflow.execute_activity(greet, "x", start_to_close_timeout=TIMEOUT), timeout=60
            )

    d = Driver(Race)
    # wait_for starts its timer before the wrapped coroutine first runs.
    assert kinds(d.step()) == [CommandType.START_TIMER, CommandType.SCHEDULE_ACTIVITY_TASK]
    d.history.activity_completed("1", "done")
    final = d.step()
    assert kinds(final) == [CommandType.CANCEL_TIMER, CommandType.COMPLETE_WORKFLOW_EXECUTION]
    assert final[0].attributes == {"timer_id": "1"}
    d.history.start_wft()
    assert d.replay() == []


def test_timer_started_and_cancelled_in_one_task_sends_nothing() -> None:
    @workflow.defn
    class Fickle:
        @workflow.run
        async def run(self) -> None:
            task = asyncio.create_task(asyncio.sleep(100))
            await asyncio.sleep(0)
            task.cancel()
            await workflow.sleep(1)

    d = Driver(Fickle)
    (timer,) = d.step()
    # Timer 1 was withdrawn; the second sleep got the next id.
    assert timer.attributes["timer_id"] == "2"


def test_wait_for_timeout_fires_on_workflow_time() -> None:
    @workflow.defn
    class Deadline:
        def __init__(self) -> None:
            self.done = False

        @workflow.run
        async def run(self) -> str:
            try:
                await workflow.wait_condition(lambda: self.done, timeout=5)
            except builtins.TimeoutError:
                return "timed out"
            return "done"

    d = Driver(Deadline)
    assert kinds(d.step()) == [CommandType.START_TIMER]
    d.history.timer_fired("1")
    assert decode(d.step()[0].attributes["result"]) == ["timed out"]


@workflow.defn
class Approvals:
    def __init__(self) -> None:
        self.approvers: list[str] = []
        self.notes: list[str] = []

    @workflow.run
    async def run(self, needed: int) -> list[str]:
        workflow.set_signal_handler("note", self.notes.append)
        await workflow.wait_condition(lambda: len(self.approvers) >= needed)
        return self.approvers + self.notes

    @workflow.signal
    async def approve(self, who: str) -> None:
        self.approvers.append(who)

    @workflow.signal(name="reject")
    def reject(self, who: str) -> None:
        raise ApplicationError(f"rejected by {who}", type="Rejected")

    @workflow.query
    def count(self) -> int:
        return len(self.approvers)

    @workflow.query(name="approvers")
    def list_approvers(self, prefix: str) -> list[str]:
        return [prefix + a for a in self.approvers]


def test_signals_before_and_after_the_handler_exists() -> None:
    d = Driver(Approvals, 2)
    # Arrives in the first task, before run() set the dynamic handler: buffered, then delivered.
    d.history.signal("note", "early")
    d.history.signal("approve", "ann")
    assert d.step() == []
    assert d.instance.query("count", None) == d.instance.converter.to_payloads([1])
    d.history.signal("note", "late")
    d.history.signal("approve", "bob")
    (done,) = d.step()
    assert decode(done.attributes["result"]) == [["ann", "bob", "early", "late"]]


def test_queries_read_state_and_cannot_change_it() -> None:
    d = Driver(Approvals, 5)
    d.history.signal("approve", "ann")
    d.step()
    answer = d.instance.query("approvers", d.instance.converter.to_payloads([">"]))
    assert decode(answer) == [[">ann"]]
    from cadenza.sdk.exceptions import QueryFailedError

    with pytest.raises(QueryFailedError, match="no query 'missing'"):
        d.instance.query("missing", None)

    def sneaky() -> None:
        asyncio.get_running_loop().call_later(5, print)

    d.instance.set_query_handler("sneaky", sneaky)
    with pytest.raises(QueryFailedError, match="Cannot start a timer in a query handler"):
        d.instance.query("sneaky", None)


def test_failure_error_from_a_signal_handler_fails_the_workflow() -> None:
    d = Driver(Approvals, 2)
    d.history.signal("reject", "carol")
    (fail,) = d.step()
    assert fail.command_type is CommandType.FAIL_WORKFLOW_EXECUTION
    assert fail.attributes["failure"]["application_type"] == "Rejected"


def test_cancel_request_cancels_run_and_sends_cancel_command() -> None:
    @workflow.defn
    class Patient:
        @workflow.run
        async def run(self) -> None:
            await workflow.execute_activity(greet, "x", start_to_close_timeout=TIMEOUT)

    d = Driver(Patient)
    d.step()
    d.history.cancel_requested()
    commands = d.step()
    assert kinds(commands) == [
        CommandType.REQUEST_CANCEL_ACTIVITY_TASK,
        CommandType.CANCEL_WORKFLOW_EXECUTION,
    ]
    assert commands[0].attributes == {"scheduled_event_id": d.history.scheduled_id("1")}
    d.history.start_wft()
    assert d.replay() == []


def test_cancel_request_can_be_handled_by_the_workflow() -> None:
    @workflow.defn
    class Cleanup:
        @workflow.run
        async def run(self) -> str:
            try:
                await workflow.sleep(3600)
            except asyncio.CancelledError:
                return await workflow.execute_activity(greet, "cleanup", start_to_close_timeout=TIMEOUT)
            return "slept"

    d = Driver(Cleanup)
    d.step()
    d.history.cancel_requested()
    assert kinds(d.step()) == [CommandType.CANCEL_TIMER, CommandType.SCHEDULE_ACTIVITY_TASK]
    d.history.activity_completed("1", "cleaned")
    assert decode(d.step()[0].attributes["result"]) == ["cleaned"]


def test_activity_handle_cancel_is_try_cancel() -> None:
    @workflow.defn
    class Canceller:
        @workflow.run
        async def run(self) -> str:
            handle = workflow.start_activity(greet, "x", start_to_close_timeout=TIMEOUT)
            await workflow.sleep(1)
            handle.cancel()
            try:
                await handle
            except ActivityError as err:
                assert isinstance(err.cause, CanceledError)
                return f"cancelled {err.activity_id}"
            return "finished"

    d = Driver(Canceller)
    assert kinds(d.step()) == [CommandType.SCHEDULE_ACTIVITY_TASK, CommandType.START_TIMER]
    d.history.timer_fired("1")
    final = d.step()
    assert kinds(final) == [CommandType.REQUEST_CANCEL_ACTIVITY_TASK, CommandType.COMPLETE_WORKFLOW_EXECUTION]
    assert decode(final[1].attributes["result"]) == ["cancelled 1"]


def test_activity_failure_raises_activity_error_with_converted_cause() -> None:
    caught: list[ActivityError] = []

    @workflow.defn
    class Careful:
        @workflow.run
        async def run(self) -> str:
            for _ in range(2):
                try:
                    await workflow.execute_activity(greet, "x", start_to_close_timeout=TIMEOUT)
                except ActivityError as err:
                    caught.append(err)
            return "ok"

    d = Driver(Careful)
    d.step()
    d.history.activity_failed("1", exception_to_failure(ApplicationError("boom", 7, type="Bad")))
    d.step()
    d.history.activity_failed(
        "2",
        exception_to_failure(TimeoutError("slow", type=TimeoutType.START_TO_CLOSE)),
        EventType.ACTIVITY_TASK_TIMED_OUT,
    )
    assert kinds(d.step()) == [CommandType.COMPLETE_WORKFLOW_EXECUTION]
    first, second = caught
    assert isinstance(first.cause, ApplicationError)
    assert (first.cause.type, first.cause.message, list(first.cause.details)) == ("Bad", "boom", [7])
    assert first.activity_type == "greet" and first.scheduled_event_id == d.history.scheduled_id("1")
    assert first.retry_state == "NON_RETRYABLE_FAILURE"
    assert isinstance(second.cause, TimeoutError) and second.cause.type is TimeoutType.START_TO_CLOSE


def test_application_error_fails_the_workflow() -> None:
    @workflow.defn
    class Failing:
        @workflow.run
        async def run(self) -> None:
            raise ApplicationError("bad input", "detail", type="InputError", non_retryable=True)

    (fail,) = Driver(Failing).step()
    assert fail.command_type is CommandType.FAIL_WORKFLOW_EXECUTION
    failure = fail.attributes["failure"]
    assert (failure["message"], failure["application_type"], failure["non_retryable"]) == (
        "bad input",
        "InputError",
        True,
    )
    assert "raise ApplicationError" in failure["stack_trace"]


def test_unhandled_activity_error_fails_the_workflow_with_its_cause() -> None:
    d = Driver(Hello, "x")
    d.step()
    d.history.activity_failed("1", exception_to_failure(ApplicationError("nope")))
    (fail,) = d.step()
    assert fail.command_type is CommandType.FAIL_WORKFLOW_EXECUTION
    assert fail.attributes["failure"]["failure_type"] == "ActivityFailure"
    assert fail.attributes["failure"]["cause"]["message"] == "nope"


def test_a_bug_fails_the_task_not_the_workflow() -> None:
    @workflow.defn
    class Buggy:
        @workflow.run
        async def run(self) -> None:
            await workflow.sleep(1)
            lookup: dict[str, int] = {}
            lookup["missing"]

    d = Driver(Buggy)
    d.step()
    d.history.timer_fired("1")
    d.history.start_wft()
    with pytest.raises(WorkflowTaskError) as info:
        d.instance.activate(d.history.events[d.instance.last_event_id :])
    assert isinstance(info.value.cause, KeyError)
    assert not isinstance(info.value, NondeterminismError)
    with pytest.raises(RuntimeError, match="cannot be used"):
        d.instance.activate(d.history.events[d.instance.last_event_id :])


def test_renamed_activity_is_nondeterminism_naming_both() -> None:
    d = Driver(Hello, "World")
    d.step()
    d.history.activity_completed("1", "hi")
    d.history.schedule_wft()
    d.history.start_wft()

    @workflow.defn(name="Hello")
    class HelloChanged:
        @workflow.run
        async def run(self, name: str) -> str:
            return await workflow.execute_activity(greet_renamed, name, start_to_close_timeout=TIMEOUT)

    changed = Driver(HelloChanged, "World")
    changed.history = d.history
    with pytest.raises(NondeterminismError) as info:
        changed.new_instance().activate(d.history.events)
    err = info.value
    assert "greet_v2" in str(err) and "'greet'" in str(err)
    assert err.expected == "ScheduleActivityTask(activity_type='greet_v2', activity_id='1')"
    assert err.recorded == "ActivityTaskScheduled(activity_type='greet', activity_id='1')"
    assert err.event_id == d.history.scheduled_id("1")


def test_missing_command_on_replay_is_nondeterminism() -> None:
    d = Driver(Hello, "World")
    d.step()
    d.history.activity_completed("1", "hi")
    d.history.schedule_wft()
    d.history.start_wft()

    @workflow.defn(name="Hello")
    class HelloSleeps:
        @workflow.run
        async def run(self, name: str) -> str:
            await workflow.sleep(1)
            return name

    changed = Driver(HelloSleeps, "World")
    with pytest.raises(NondeterminismError, match="StartTimer"):
        changed.new_instance().activate(d.history.events)


def test_failed_workflow_task_attempt_is_skipped_on_replay() -> None:
    d = Driver(Hello, "World")
    d.history.start_wft()
    d.history.fail_wft()
    d.history.schedule_wft()
    commands = d.step()
    assert kinds(commands) == [CommandType.SCHEDULE_ACTIVITY_TASK]
    d.history.activity_completed("1", "hi")
    d.history.schedule_wft()
    d.history.start_wft()
    assert kinds(d.replay()) == [CommandType.COMPLETE_WORKFLOW_EXECUTION]


def test_cached_instance_whose_task_failed_asks_for_a_replay() -> None:
    d = Driver(Hello, "World")
    d.history.start_wft()
    d.instance.activate(d.history.events)
    d.history.fail_wft()
    d.history.schedule_wft()
    d.history.start_wft()
    with pytest.raises(StaleInstanceError):
        d.instance.activate(d.history.events[d.instance.last_event_id :])


def test_slice_must_continue_after_last_event() -> None:
    d = Driver(Hello, "World")
    d.step()
    d.history.new_wft()
    with pytest.raises(ValueError, match="expected event"):
        d.instance.activate(d.history.events[-1:])


def test_disallowed_operations_raise_clear_errors() -> None:
    errors: list[str] = []

    @workflow.defn
    class Naughty:
        @workflow.run
        async def run(self) -> None:
            loop = asyncio.get_running_loop()
            for attempt in (
                lambda: loop.run_in_executor(None, print),
                lambda: asyncio.to_thread(print),
                lambda: loop.getaddrinfo("example.com", 80),
                lambda: asyncio.open_connection("example.com", 80),
                lambda: asyncio.create_subprocess_exec("ls"),
            ):
                try:
                    result = attempt()
                    if asyncio.iscoroutine(result):
                        await result
                except RuntimeError as err:
                    errors.append(str(err))

    Driver(Naughty).step()
    assert len(errors) == 5
    assert all("is not allowed in workflow code" in e for e in errors)
    assert "run_in_executor is not allowed in workflow code: threads" in errors[0]


def test_info_random_and_uuid_are_deterministic() -> None:
    seen: list[Any] = []

    @workflow.defn
    class Dice:
        @workflow.run
        async def run(self) -> None:
            info = workflow.info()
            seen.append((info.workflow_id, info.run_id, info.workflow_type, info.task_queue, info.attempt))
            seen.append((workflow.random().random(), str(workflow.uuid4())))

    Driver(Dice).step()
    Driver(Dice).step()
    assert seen[0] == ("wf-1", "run-1", "Dice", "tq", 1)
    assert seen[1] == seen[3]
    assert seen[1] != [] and seen[1][1][14] == "4"


def test_logger_is_silent_during_replay(caplog: pytest.LogCaptureFixture) -> None:
    @workflow.defn
    class Chatty:
        @workflow.run
        async def run(self) -> None:
            workflow.logger.info("step %d", 1)
            await workflow.sleep(1)
            workflow.logger.info("step %d", 2)

    d = Driver(Chatty)
    with caplog.at_level("INFO", logger="cadenza.workflow"):
        d.step()
        d.history.timer_fired("1")
        d.history.schedule_wft()
        d.history.start_wft()
        d.replay()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("step 1") and messages[1].startswith("step 2")
    assert caplog.records[0].workflow_id == "wf-1"  # type: ignore[attr-defined]


def test_outside_a_workflow_the_api_refuses() -> None:
    assert not workflow.in_workflow()
    with pytest.raises(RuntimeError, match=r"workflow.info\(\) can only be used in workflow code"):
        workflow.info()


def test_missing_timeouts_and_negative_timeouts_are_named() -> None:
    errors: list[str] = []

    @workflow.defn
    class BadOptions:
        @workflow.run
        async def run(self) -> None:
            for timeout in (None, timedelta(seconds=-1)):
                try:
                    await workflow.execute_activity(greet, "x", start_to_close_timeout=timeout)
                except ValueError as err:
                    errors.append(str(err))

    assert Driver(BadOptions).step()[0].command_type is CommandType.COMPLETE_WORKFLOW_EXECUTION
    assert "schedule_to_close_timeout" in errors[0] and "start_to_close_timeout" in errors[0]
    assert "start_to_close_timeout must not be negative" in errors[1] and "-1" in errors[1]


def test_unencodable_argument_fails_the_task_before_any_command() -> None:
    @workflow.defn
    class Unencodable:
        @workflow.run
        async def run(self) -> None:
            await workflow.execute_activity(greet, object(), start_to_close_timeout=TIMEOUT)

    d = Driver(Unencodable)
    d.history.start_wft()
    with pytest.raises(WorkflowTaskError) as info:
        d.instance.activate(d.history.events)
    assert "argument 0 of type object" in str(info.value.cause)


def test_activate_leaves_the_callers_running_loop_alone() -> None:
    async def worker() -> list[CommandType]:
        outer = asyncio.get_running_loop()
        d = Driver(Hello, "World")
        d.step()
        assert asyncio.get_running_loop() is outer
        await asyncio.sleep(0)
        d.history.activity_completed("1", "x")
        commands = d.step()
        assert asyncio.get_running_loop() is outer
        assert asyncio.current_task() is not None
        return kinds(commands)

    assert asyncio.run(worker()) == [CommandType.COMPLETE_WORKFLOW_EXECUTION]


def test_stack_trace_query_shows_where_the_run_waits() -> None:
    d = Driver(Hello, "World")
    d.step()
    (answer,) = decode(d.instance.query("__stack_trace", None))
    assert answer.startswith("Hello (run):\n")
    assert f"{__file__}:" in answer and " in run\n" in answer
    assert answer.endswith("waiting on activity 'greet' (id '1')")


def test_wait_for_timeout_on_an_activity_cancels_it_and_raises_its_cancellation() -> None:
    # As in temporalio: the timeout cancels the awaiting task, which cancels the activity (TRY_CANCEL),
    # and the activity's outcome, an ActivityError caused by the cancellation, is what wait_for raises.
    @workflow.defn
    class Impatient:
        @workflow.run
        async def run(self) -> str:
            try:
                await asyncio.wait_for(
                    workflow.execute_activity(greet, "x", start_to_close_timeout=TIMEOUT), timeout=5
                )
            except ActivityError as err:
                assert isinstance(err.cause, CanceledError)
                return "gave up"
            return "finished"

    d = Driver(Impatient)
    assert kinds(d.step()) == [CommandType.START_TIMER, CommandType.SCHEDULE_ACTIVITY_TASK]
    d.history.timer_fired("1")
    final = d.step()
    assert kinds(final) == [CommandType.REQUEST_CANCEL_ACTIVITY_TASK, CommandType.COMPLETE_WORKFLOW_EXECUTION]
    assert decode(final[1].attributes["result"]) == ["gave up"]
    # The engine later reports the activity cancelled: ignored, the workflow already moved on.
    d.history.add(
        EventType.ACTIVITY_TASK_CANCELED,
        {"scheduled_event_id": d.history.scheduled_id("1"), "started_event_id": 0, "details": None},
    )
    d.history.start_wft()
    assert d.replay() == []


def test_gathered_activities_are_all_cancelled_with_the_workflow() -> None:
    @workflow.defn
    class Fanout:
        @workflow.run
        async def run(self) -> None:
            await asyncio.gather(
                *(workflow.execute_activity(greet, n, start_to_close_timeout=TIMEOUT) for n in "ab")
            )

    d = Driver(Fanout)
    d.step()
    d.history.cancel_requested()
    assert kinds(d.step()) == [
        CommandType.REQUEST_CANCEL_ACTIVITY_TASK,
        CommandType.REQUEST_CANCEL_ACTIVITY_TASK,
        CommandType.CANCEL_WORKFLOW_EXECUTION,
    ]
