"""Mutable state is a fold of its history.

Cross-cluster replication rebuilds a standby's state from the replicated events with
``MutableState.rebuild``, so for every run the engine stored, closed or still open, folding the run's
stored history must give the state the engine stored for it. These tests run a broad set of real
workflows, then rebuild every run in the store and compare.

``check_run`` defines "the same": the plain snapshot dicts that ``encode_state`` stores, minus only
what is by design not in history (``comparable``, ``without_buffered_outcomes``), each exclusion with
the reason it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import pickle
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from e2e.conftest import run_in_env
from e2e.test_chaining import Accumulator, Flaky, Messenger, Parent, Square, SumOfSquares, Tick
from e2e.test_timeouts import TimeoutWorkflow, goes_quiet, slow
from e2e.workflows import (
    ANALYSIS_QUEUE,
    ATTEMPTS,
    QUICK,
    Approval,
    Cancellable,
    HelloWorkflow,
    RetryWorkflow,
    Sleeper,
    VideoPipeline,
    classify,
    detect_watermark,
    flaky,
    refuses,
    say_hello,
    transcode,
    update_media_db,
    wait_forever,
)
from sdk.e2e_semantics.workflows import CancelsOneBranch, cleanup, long_work, sleepy
from sdk.e2e_semantics.workflows import calls as local_calls

from cadenza import activity, workflow
from cadenza.client import WorkflowHandle
from cadenza.common import RetryPolicy
from cadenza.engine.history.mutable_state import MutableState, decode_state, encode_state
from cadenza.engine.history.workflow_tasks import TRANSIENT_SCHEDULED_ID
from cadenza.engine.persistence.protocols import ExecutionRow
from cadenza.exceptions import ActivityError, WorkflowFailureError
from cadenza.schemas.codec import decode_events
from cadenza.schemas.events import EventType, HistoryEvent
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

E = EventType
QUEUE = "fold"
HOUR = timedelta(hours=1)


# -- what "the same" means -----------------------------------------------------------------------------

INFO_NOT_IN_HISTORY = {
    # The byte size of the stored batches: it depends on how events were grouped into writes (and on
    # the encoding), not on what they say; a standby counts the bytes it writes itself.
    "history_size_bytes",
    # Where this cluster stores the run's history, chosen when the run is created; not an event fact.
    "tree_id",
    "branch_id",
    # Sticky execution: which worker has the run cached, local to this cluster and never an event
    # (a fold, like a standby's or a rebuilt state, has none).
    "sticky_task_queue",
    "sticky_schedule_to_start_timeout_ms",
    # WorkflowExecutionCancelRequested carries no request id: the engine sets it beside the event
    # (and nothing reads it), so it is not derivable until the event records it.
    "cancel_request_id",
}

ACTIVITY_ATTEMPT_NOT_IN_HISTORY = {
    # The current attempt of a pending activity: ActivityTaskStarted is written only with the
    # activity's final outcome (retries cost no history), so while it runs, waits in the queue or
    # backs off before a retry, its attempt number, the attempt's schedule time (moved by the retry
    # backoff), start, worker, poll request, heartbeats and the previous attempt's failure live only
    # in mutable state; replication carries them by activity-state sync, not by events (all but the
    # poll's request id, which only the cluster that handed the attempt out uses).
    "attempt",
    "scheduled_time",
    "started_time",
    "started_identity",
    "request_id",
    "last_heartbeat_time",
    "heartbeat_details",
    "last_failure",
}

WORKFLOW_TASK_START = {
    # A workflow task's start is speculative: it reserves event ids, but its WorkflowTaskStarted event
    # is written only with the task's outcome. A write made meanwhile (a signal, a flush of the start)
    # stores the start in the snapshot, not in history.
    "started_event_id": 0,
    "started_time": 0,
    "request_id": "",
    "identity": "",
}


def snapshot(ms: MutableState) -> dict[str, Any]:
    """The plain dicts the store holds for ``ms``."""
    doc: dict[str, Any] = pickle.loads(encode_state(ms))
    return doc


NOT_IN_HISTORY = {
    # The store's optimistic-concurrency counter: it counts writes, not events.
    "db_version",
    # Events that arrived while a workflow task was in flight: they wait outside history until the
    # task ends (what they already changed is undone by ``without_buffered_outcomes``).
    "buffered",
    # WorkflowExecutionSignaled carries no request id, so the ids of the signals applied (kept to
    # drop a retried signal) are not derivable; ``check_run`` checks the fold finds none extra.
    "signal_request_ids",
    # The run's other history branches, kept by this cluster after a replication conflict went
    # against them: where histories are stored, not what the current branch says.
    "branches",
}


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` minus what is by design not in history; collections keyed by their ids."""
    out = {k: v for k, v in doc.items() if k not in NOT_IN_HISTORY}
    out["info"] = {k: v for k, v in doc["info"].items() if k not in INFO_NOT_IN_HISTORY}
    out["activities"] = {
        a["scheduled_event_id"]: {k: v for k, v in a.items() if k not in ACTIVITY_ATTEMPT_NOT_IN_HISTORY}
        for a in doc["activities"]
    }
    out["timers"] = {t["timer_id"]: t for t in doc["timers"]}
    out["children"] = {c["initiated_event_id"]: c for c in doc["children"]}
    out["external"] = {x["initiated_event_id"]: x for x in doc["external"]}
    wt = dict(doc["workflow_task"])
    if wt["started_event_id"] and not wt["started_written"]:
        wt.update(WORKFLOW_TASK_START)
        if wt["transient"]:
            # A transient attempt gets its event ids only when it starts.
            wt["scheduled_event_id"] = TRANSIENT_SCHEDULED_ID
    if wt["transient"]:
        # A transient attempt that fails again is retried without writing any event (by design: a
        # workflow whose code keeps failing must not grow its history), so its attempt number and
        # schedule time after the first failure are not in history; ``check_run`` checks the order.
        del wt["attempt"], wt["scheduled_time"]
    out["workflow_task"] = wt
    return out


ACTIVITY_OUTCOMES = {
    E.ACTIVITY_TASK_COMPLETED,
    E.ACTIVITY_TASK_FAILED,
    E.ACTIVITY_TASK_TIMED_OUT,
    E.ACTIVITY_TASK_CANCELED,
}
CHILD_OUTCOMES = {
    E.CHILD_WORKFLOW_EXECUTION_COMPLETED,
    E.CHILD_WORKFLOW_EXECUTION_FAILED,
    E.CHILD_WORKFLOW_EXECUTION_CANCELED,
    E.CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    E.CHILD_WORKFLOW_EXECUTION_TERMINATED,
}
EXTERNAL_OUTCOMES = {
    E.EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
    E.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
    E.EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    E.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
}


def without_buffered_outcomes(doc: dict[str, Any]) -> dict[str, Any]:
    """The stored state as it was before its buffered events arrived.

    An event that arrives while a workflow task is in flight is buffered, and applied only when it is
    written, after the task. What it resolves is marked at once, so that a retried request (a timer
    task, an activity's answer, a child's report) records nothing twice: those marks are all that
    buffered events change in the stored state, and they are not in history yet."""
    doc = copy.deepcopy(doc)
    activities = {a["scheduled_event_id"]: a for a in doc["activities"]}
    timers = {t["timer_id"]: t for t in doc["timers"]}
    children = {c["initiated_event_id"]: c for c in doc["children"]}
    external = {x["initiated_event_id"]: x for x in doc["external"]}
    for _time, event_type, _version, attrs in doc["buffered"]:
        et = EventType(event_type)
        if et == E.WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            doc["info"]["cancel_requested"] = False
        elif et == E.ACTIVITY_TASK_STARTED or et in ACTIVITY_OUTCOMES:
            activities[attrs["scheduled_event_id"]]["result_buffered"] = False
        elif et == E.TIMER_FIRED:
            timers[attrs["timer_id"]]["fired_buffered"] = False
        elif et in (E.CHILD_WORKFLOW_EXECUTION_STARTED, E.START_CHILD_WORKFLOW_EXECUTION_FAILED):
            children[attrs["initiated_event_id"]]["run_id"] = ""
        elif et in CHILD_OUTCOMES:
            # Marked by negating its started event id; -1 stands for 0 (its start is buffered too).
            child = children[attrs["initiated_event_id"]]
            child["started_event_id"] = 0 if child["started_event_id"] == -1 else -child["started_event_id"]
        elif et in EXTERNAL_OUTCOMES:
            external[attrs["initiated_event_id"]]["run_id"] = attrs["workflow_execution"]["run_id"]
    doc["buffered"] = []
    return doc


def differences(stored: Any, rebuilt: Any, path: str = "") -> list[str]:
    """Every path at which the two plain values differ, for a readable failure."""
    if isinstance(stored, dict) and isinstance(rebuilt, dict):
        out: list[str] = []
        for k in sorted(set(stored) | set(rebuilt), key=str):
            if k not in rebuilt:
                out.append(f"{path}.{k}: stored {stored[k]!r}, missing from the fold")
            elif k not in stored:
                out.append(f"{path}.{k}: the fold has {rebuilt[k]!r}, not stored")
            else:
                out += differences(stored[k], rebuilt[k], f"{path}.{k}")
        return out
    if stored != rebuilt or type(stored) is not type(rebuilt):
        return [f"{path}: stored {stored!r}, fold {rebuilt!r}"]
    return []


async def stored_history(env: WorkflowEnvironment, ms: MutableState, row: ExecutionRow) -> list[HistoryEvent]:
    """The run's written events: those below the row's ``next_event_id`` (a write stores its events
    and its row in one transaction, so this reads the history that row was written with)."""
    events: list[HistoryEvent] = []
    token: bytes | None = None
    while True:
        nodes, token = await env.host.stores.history.read_history_branch(
            ms.info.tree_id,
            ms.info.branch_id,
            min_node_id=1,
            max_node_id=row.next_event_id,
            page_size=100,
            token=token,
        )
        for node in nodes:
            events.extend(decode_events(node.data))
        if not token:
            return events


def check_run(row: ExecutionRow, stored_ms: MutableState, events: list[HistoryEvent]) -> list[str]:
    """What differs between the stored state of one run and the fold of its stored history."""
    where = f"{row.workflow_id}/{row.run_id}"
    problems: list[str] = []
    if [e.event_id for e in events] != list(range(1, row.next_event_id)):
        return [f"{where}: history is not events 1..{row.next_event_id - 1}"]
    stored = without_buffered_outcomes(snapshot(stored_ms))
    rebuilt_ms = MutableState.rebuild(row.namespace_id, row.workflow_id, row.run_id, events)
    rebuilt = snapshot(rebuilt_ms)
    extra = set(rebuilt["signal_request_ids"]) - set(stored["signal_request_ids"])
    if extra:
        problems.append(f"{where}: the fold has signal request ids the run never recorded: {extra}")
    s_wt, r_wt = stored["workflow_task"], rebuilt["workflow_task"]
    if s_wt["transient"] and r_wt["transient"]:
        if s_wt["attempt"] < r_wt["attempt"] or (
            s_wt["attempt"] == r_wt["attempt"] and s_wt["scheduled_time"] != r_wt["scheduled_time"]
        ):
            problems.append(f"{where}: transient workflow task {s_wt} is not a later attempt than {r_wt}")
    problems += [f"{where}: {d}" for d in differences(comparable(stored), comparable(rebuilt))]
    return problems


async def assert_every_run_is_a_fold_of_its_history(env: WorkflowEnvironment, only: str = "") -> Counter[str]:
    """Rebuilds every run of every shard (``only``: of that workflow id) from its stored history and
    compares it with the stored state; returns what was checked (closed and open runs, event types)."""
    seen: Counter[str] = Counter()
    problems: list[str] = []
    for shard_id in sorted(env.host.history.shards):
        token: bytes | None = None
        while True:
            rows, token = await env.host.stores.executions.list_executions(shard_id, 100, token)
            for row in rows:
                if only and row.workflow_id != only:
                    continue
                stored_ms = decode_state(row.data)
                events = await stored_history(env, stored_ms, row)
                problems += check_run(row, stored_ms, events)
                seen["open" if stored_ms.is_running else "closed"] += 1
                seen.update(e.event_type.name for e in events)
            if not token:
                break
    assert not problems, "the fold of history differs from the stored state:\n" + "\n".join(problems)
    return seen


# -- workflows beyond the e2e scenarios ------------------------------------------------------------------


@workflow.defn
class PatientRetry:
    """An activity that fails, then waits an hour before its next attempt."""

    @workflow.run
    async def run(self, key: str) -> int:
        policy = RetryPolicy(initial_interval=HOUR)
        return await workflow.execute_activity(flaky, key, start_to_close_timeout=QUICK, retry_policy=policy)


@workflow.defn
class WaitsForChild:
    """A parent waiting for its child."""

    @workflow.run
    async def run(self, child_id: str, run_timeout_minutes: int) -> list[str]:
        timeout = timedelta(minutes=run_timeout_minutes) if run_timeout_minutes else None
        return await workflow.execute_child_workflow(Approval.run, 1, id=child_id, run_timeout=timeout)


@workflow.defn
class KidTroubles:
    """A child that cannot start (its id is taken), one it cancels, and a cancel with no target."""

    @workflow.run
    async def run(self) -> list[str]:
        outcomes: list[str] = []
        first = await workflow.start_child_workflow(Approval.run, 1, id="kid-twice")
        try:
            await workflow.start_child_workflow(Approval.run, 1, id="kid-twice")
        except Exception as err:
            outcomes.append(type(err).__name__)
        await workflow.get_external_workflow_handle("kid-twice").cancel()
        try:
            await first
        except Exception as err:
            outcomes.append(type(err).__name__)
        try:
            await workflow.get_external_workflow_handle("nobody").cancel()
        except Exception as err:
            outcomes.append(type(err).__name__)
        return outcomes


@workflow.defn
class IgnoresCancel:
    """Takes note of a cancel request and keeps waiting."""

    @workflow.run
    async def run(self) -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await workflow.wait_condition(lambda: False)
        await workflow.wait_condition(lambda: False)
        return "never"


FAILED_TASKS: Counter[str] = Counter()


@workflow.defn
class FailsFirstTask:
    """Its first workflow task hits a bug (a failed task, not a failed workflow); later ones pass."""

    @workflow.run
    async def run(self, key: str, always: bool) -> str:
        FAILED_TASKS[key] += 1
        if always or FAILED_TASKS[key] == 1:
            raise RuntimeError(f"bug in workflow code ({FAILED_TASKS[key]})")
        return "fixed"


@activity.defn
async def upper(text: str) -> str:
    return text.upper()


@workflow.defn
class Markers:
    """Side effects, a version marker, local activities and search-attribute upserts."""

    @workflow.run
    async def run(self, text: str) -> str:
        token = workflow.side_effect(lambda: "token-1")
        workflow.upsert_search_attributes({"CustomKeywordField": "marked"})
        if workflow.patched("louder"):
            text = await workflow.execute_local_activity(upper, text, start_to_close_timeout=QUICK)
        await workflow.sleep(0.05)
        workflow.upsert_search_attributes({"CustomIntField": 3})
        return f"{token}:{text}"


@workflow.defn
class CancelsQueued:
    """Cancels an activity that no worker took yet (on a queue nobody polls)."""

    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(slow, 0.0, task_queue="nobody-home", start_to_close_timeout=HOUR)
        await workflow.sleep(0.01)
        handle.cancel()
        try:
            return await handle
        except ActivityError as err:
            return type(err.cause).__name__


GATES: dict[str, asyncio.Event] = {}
"""Activities that finish when the test says so (they run in the test's own event loop)."""


@activity.defn
async def gated(name: str) -> str:
    await GATES[name].wait()
    return name


@workflow.defn
class BusyTask:
    """A workflow task that runs for seconds (a long local activity) while its activity, its timer
    and its child finish and signals and a cancel request arrive: all of them are buffered."""

    def __init__(self) -> None:
        self.signals = 0

    @workflow.run
    async def run(self) -> str:
        work = workflow.start_activity(gated, "busy", start_to_close_timeout=QUICK)
        timer = asyncio.create_task(workflow.sleep(1.5))
        child = await workflow.start_child_workflow(Approval.run, 1, id="busy-kid")
        await workflow.execute_local_activity(sleepy, 5.0, start_to_close_timeout=QUICK)
        # Shielded: the cancel request is delivered in the same task as the outcomes, and an
        # unshielded wait would ask to cancel the activity whose completion that task delivers.
        await asyncio.shield(asyncio.gather(work, timer, child))
        return "done"

    @workflow.signal
    def poke(self) -> None:
        self.signals += 1


@workflow.defn
class ResetTarget:
    """Leaves an activity (on a queue nobody polls) and a timer pending, and collects signals."""

    def __init__(self) -> None:
        self.items: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        workflow.start_activity(slow, 0.0, task_queue="nobody-home", start_to_close_timeout=HOUR)
        nap = asyncio.create_task(workflow.sleep(3600))
        await workflow.wait_condition(lambda: len(self.items) >= 3)
        nap.cancel()
        return self.items

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)


# -- driving the scenarios -------------------------------------------------------------------------------


WORKFLOW_TASK_EVENTS = {
    E.WORKFLOW_TASK_SCHEDULED,
    E.WORKFLOW_TASK_STARTED,
    E.WORKFLOW_TASK_COMPLETED,
    E.WORKFLOW_TASK_FAILED,
    E.WORKFLOW_TASK_TIMED_OUT,
}


async def settled(handle: WorkflowHandle[Any], done: Callable[[list[HistoryEvent]], bool]) -> None:
    """Waits until ``done`` holds for the run's history and its last workflow task completed."""
    for _ in range(1000):
        events = (await handle.fetch_history()).events
        tasks = [e.event_type for e in events if e.event_type in WORKFLOW_TASK_EVENTS]
        if done(events) and tasks and tasks[-1] == E.WORKFLOW_TASK_COMPLETED:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{handle.id} did not settle")


def count(event_type: EventType, n: int = 1) -> Callable[[list[HistoryEvent]], bool]:
    return lambda events: sum(1 for e in events if e.event_type == event_type) >= n


async def has(handle: WorkflowHandle[Any], event_type: EventType) -> bool:
    return count(event_type)((await handle.fetch_history()).events)


async def fails(awaitable: Awaitable[Any]) -> None:
    with pytest.raises(WorkflowFailureError):
        await awaitable


async def closed_everyday_runs(env: WorkflowEnvironment) -> None:
    c = env.client

    async def hello() -> None:
        await c.execute_workflow(HelloWorkflow.run, "world", id="hello", task_queue=QUEUE)

    async def pipeline() -> None:
        await c.execute_workflow(VideoPipeline.run, "v-1-wm", id="video", task_queue=QUEUE)

    async def retries() -> None:
        ATTEMPTS.pop("fold-r1", None)
        ATTEMPTS.pop("fold-r2", None)
        assert (
            await c.execute_workflow(RetryWorkflow.run, "fold-r1", False, id="retry", task_queue=QUEUE) == 3
        )
        await fails(c.execute_workflow(RetryWorkflow.run, "fold-r2", True, id="refused", task_queue=QUEUE))

    async def signals() -> None:
        handle = await c.start_workflow(Approval.run, 2, id="approval", task_queue=QUEUE)
        await handle.signal(Approval.approve, "ann")
        await handle.signal(Approval.approve, "bob")
        assert await handle.result() == ["ann", "bob"]
        for name in ("cid", "dan"):
            await c.signal_with_start_workflow(
                Approval.run, 2, id="sws", task_queue=QUEUE, signal=Approval.approve, signal_args=[name]
            )
        assert await c.get_workflow_handle("sws").result() == ["cid", "dan"]

    async def cancel() -> None:
        handle = await c.start_workflow(Cancellable.run, id="cancelled", task_queue=QUEUE)
        for _ in range(500):
            pending = (await handle.describe()).pending_activities
            if pending and pending[0].state == "STARTED":
                break
            await asyncio.sleep(0.01)
        await handle.cancel()
        await fails(handle.result())

    async def terminate() -> None:
        handle = await c.start_workflow(Approval.run, 5, id="terminated", task_queue=QUEUE)
        await settled(handle, count(E.WORKFLOW_TASK_COMPLETED))
        await handle.signal(Approval.approve, "late")
        await handle.terminate("operator said so")

    async def chains() -> None:
        assert await c.execute_workflow(Accumulator.run, 0, 3, id="accumulator", task_queue=QUEUE) == 13
        policy = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=5)
        assert await c.execute_workflow(Flaky.run, id="flaky-run", task_queue=QUEUE, retry_policy=policy) == 3

    async def kids() -> None:
        assert await c.execute_workflow(SumOfSquares.run, [1, 2, 3], id="squares", task_queue=QUEUE) == 14
        await fails(c.execute_workflow(SumOfSquares.run, [1, -1], id="squares-bad", task_queue=QUEUE))
        await c.execute_workflow(Parent.run, "TERMINATE", id="parent-t", task_queue=QUEUE)
        await c.execute_workflow(Parent.run, "ABANDON", id="parent-a", task_queue=QUEUE)

    async def kid_troubles() -> None:
        assert len(await c.execute_workflow(KidTroubles.run, id="kid-troubles", task_queue=QUEUE)) == 3
        parent = await c.start_workflow(
            WaitsForChild.run, "kid-terminated", 0, id="parent-of-terminated", task_queue=QUEUE
        )
        await settled(parent, count(E.CHILD_WORKFLOW_EXECUTION_STARTED))
        await c.get_workflow_handle("kid-terminated").terminate("not needed")
        await fails(parent.result())

    async def external() -> None:
        target = await c.start_workflow(Approval.run, 1, id="target", task_queue=QUEUE)
        await c.execute_workflow(Messenger.run, "target", id="messenger", task_queue=QUEUE)
        assert await target.result() == ["messenger"]
        await fails(c.execute_workflow(Messenger.run, "nobody", id="messenger-lost", task_queue=QUEUE))

    async def timeouts() -> None:
        for kind in ("start_to_close", "heartbeat", "schedule_to_close"):
            await fails(c.execute_workflow(TimeoutWorkflow.run, kind, id=f"timeout-{kind}", task_queue=QUEUE))

    async def task_failure() -> None:
        FAILED_TASKS.pop("once", None)
        fixed = await c.execute_workflow(FailsFirstTask.run, "once", False, id="fails-once", task_queue=QUEUE)
        assert fixed == "fixed"

    async def activity_cancels() -> None:
        # One activity cancelled while it runs, one before any worker took it.
        assert await c.execute_workflow(CancelsOneBranch.run, id="cancels-branch", task_queue=QUEUE) == [
            "CanceledError",
            "cleaned branch",
        ]
        assert (
            await c.execute_workflow(CancelsQueued.run, id="cancels-queued", task_queue=QUEUE)
            == "CanceledError"
        )

    async def markers() -> None:
        assert await c.execute_workflow(Markers.run, "hi", id="markers", task_queue=QUEUE) == "token-1:HI"

    await asyncio.gather(
        hello(),
        pipeline(),
        retries(),
        signals(),
        cancel(),
        terminate(),
        chains(),
        kids(),
        kid_troubles(),
        external(),
        timeouts(),
        task_failure(),
        activity_cancels(),
        markers(),
    )


BUSY_BUFFER = {
    E.ACTIVITY_TASK_STARTED,
    E.ACTIVITY_TASK_COMPLETED,
    E.TIMER_FIRED,
    E.CHILD_WORKFLOW_EXECUTION_COMPLETED,
    E.WORKFLOW_EXECUTION_SIGNALED,
    E.WORKFLOW_EXECUTION_CANCEL_REQUESTED,
}


async def in_flight_task(env: WorkflowEnvironment) -> None:
    """Checks a run whose stored state holds a started workflow task and buffered events."""
    c = env.client
    GATES["busy"] = asyncio.Event()
    local_runs = local_calls["sleepy"]
    handle = await c.start_workflow(BusyTask.run, id="busy", task_queue=QUEUE)
    for _ in range(500):  # until its second workflow task is in flight, running the local activity
        if local_calls["sleepy"] > local_runs:
            break
        await asyncio.sleep(0.01)
    GATES["busy"].set()
    await c.get_workflow_handle("busy-kid").signal(Approval.approve, "busy")
    await handle.signal(BusyTask.poke)
    await handle.signal(BusyTask.poke)
    await handle.cancel()
    for _ in range(300):  # the timer fires 1.5 s after the first task, well within the second
        buffered = {e.event_type for e in (await stored_state(env, "busy")).buffered_events}
        if buffered >= BUSY_BUFFER:
            break
        await asyncio.sleep(0.01)
    assert buffered >= BUSY_BUFFER, buffered
    seen = await assert_every_run_is_a_fold_of_its_history(env, only="busy")
    assert seen["open"] == 1, seen
    await fails(handle.result())


async def stored_state(env: WorkflowEnvironment, workflow_id: str) -> MutableState:
    for shard_id in env.host.history.shards:
        rows, _ = await env.host.stores.executions.list_executions(shard_id, 1000)
        for row in rows:
            if row.workflow_id == workflow_id:
                return decode_state(row.data)
    raise AssertionError(f"no run of {workflow_id}")


async def open_everyday_runs(env: WorkflowEnvironment) -> None:
    c = env.client

    async def waiting_for_signals() -> None:
        handle = await c.start_workflow(Approval.run, 5, id="open-approval", task_queue=QUEUE)
        await handle.signal(Approval.approve, "ann")
        await handle.signal(Approval.approve, "bob")
        await settled(handle, count(E.WORKFLOW_EXECUTION_SIGNALED, 2))

    async def pending_timer() -> None:
        handle = await c.start_workflow(Sleeper.run, 60, id="open-timer", task_queue=QUEUE)
        await settled(handle, count(E.TIMER_STARTED))

    async def retry_backoff() -> None:
        ATTEMPTS.pop("fold-backoff", None)
        await c.start_workflow(PatientRetry.run, "fold-backoff", id="open-backoff", task_queue=QUEUE)
        for _ in range(500):
            if ATTEMPTS.get("fold-backoff"):
                break
            await asyncio.sleep(0.01)

    async def running_activity() -> None:
        handle = await c.start_workflow(Cancellable.run, id="open-activity", task_queue=QUEUE)
        for _ in range(500):
            pending = (await handle.describe()).pending_activities
            if pending and pending[0].state == "STARTED":
                break
            await asyncio.sleep(0.01)

    async def running_child() -> None:
        handle = await c.start_workflow(WaitsForChild.run, "open-kid", 0, id="open-parent", task_queue=QUEUE)
        await settled(handle, count(E.CHILD_WORKFLOW_EXECUTION_STARTED))
        await settled(c.get_workflow_handle("open-kid"), count(E.WORKFLOW_TASK_COMPLETED))

    async def cron_before_its_first_fire() -> None:
        await c.start_workflow(Tick.run, id="open-cron", task_queue=QUEUE, cron_schedule="0 0 1 1 *")

    async def cancel_requested() -> None:
        handle = await c.start_workflow(IgnoresCancel.run, id="open-cancel", task_queue=QUEUE)
        await settled(handle, count(E.WORKFLOW_TASK_COMPLETED))
        await handle.cancel()
        await settled(handle, count(E.WORKFLOW_EXECUTION_CANCEL_REQUESTED))

    async def failing_task() -> None:
        FAILED_TASKS.pop("always", None)
        await c.start_workflow(FailsFirstTask.run, "always", True, id="open-broken", task_queue=QUEUE)
        for _ in range(500):
            if FAILED_TASKS["always"] >= 3:
                break
            await asyncio.sleep(0.01)

    async def task_timed_out() -> None:
        # A worker takes the first workflow task and is never heard from again.
        handle = await c.start_workflow(
            HelloWorkflow.run,
            "lost",
            id="open-task-timeout",
            task_queue="lost-worker",
            task_timeout=timedelta(seconds=1),
        )
        assert await c.service.poll_workflow_task_queue(
            c.namespace, "lost-worker", identity="lost", timeout_s=5
        )
        for _ in range(500):
            if await has(handle, E.WORKFLOW_TASK_TIMED_OUT):
                break
            await asyncio.sleep(0.01)

    async def reset_with_pending_work() -> None:
        handle = await c.start_workflow(ResetTarget.run, id="open-reset", task_queue=QUEUE)
        await settled(handle, count(E.TIMER_STARTED))
        await handle.signal(ResetTarget.add, "a")
        await settled(handle, count(E.WORKFLOW_TASK_COMPLETED, 2))
        await handle.signal(ResetTarget.add, "b")
        await settled(handle, count(E.WORKFLOW_TASK_COMPLETED, 3))
        events = (await handle.fetch_history()).events
        # Back to the task that saw "a": the activity and timer were pending then, "b" comes again.
        second = [e for e in events if e.event_type == E.WORKFLOW_TASK_COMPLETED][1]
        await handle.reset(reset_type="EventId", event_id=second.event_id, reason="bad deploy")
        await settled(handle, count(E.WORKFLOW_TASK_COMPLETED))

    await asyncio.gather(
        waiting_for_signals(),
        pending_timer(),
        retry_backoff(),
        running_activity(),
        running_child(),
        cron_before_its_first_fire(),
        cancel_requested(),
        failing_task(),
        task_timed_out(),
        reset_with_pending_work(),
    )


EVERYDAY_WORKFLOWS = [
    HelloWorkflow,
    VideoPipeline,
    RetryWorkflow,
    Approval,
    Cancellable,
    Accumulator,
    Flaky,
    SumOfSquares,
    Square,
    Parent,
    Messenger,
    TimeoutWorkflow,
    FailsFirstTask,
    Markers,
    Sleeper,
    PatientRetry,
    WaitsForChild,
    Tick,
    IgnoresCancel,
    ResetTarget,
    KidTroubles,
    CancelsOneBranch,
    CancelsQueued,
    BusyTask,
]
EVERYDAY_ACTIVITIES = [
    say_hello,
    transcode,
    update_media_db,
    flaky,
    refuses,
    wait_forever,
    slow,
    goes_quiet,
    upper,
    long_work,
    cleanup,
    sleepy,
    gated,
]

EVERYDAY_EVENTS = {
    E.WORKFLOW_EXECUTION_STARTED,
    E.WORKFLOW_EXECUTION_COMPLETED,
    E.WORKFLOW_EXECUTION_FAILED,
    E.WORKFLOW_EXECUTION_CANCELED,
    E.WORKFLOW_EXECUTION_TERMINATED,
    E.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    E.WORKFLOW_EXECUTION_SIGNALED,
    E.WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    E.WORKFLOW_TASK_SCHEDULED,
    E.WORKFLOW_TASK_STARTED,
    E.WORKFLOW_TASK_COMPLETED,
    E.WORKFLOW_TASK_FAILED,
    E.ACTIVITY_TASK_SCHEDULED,
    E.ACTIVITY_TASK_STARTED,
    E.ACTIVITY_TASK_COMPLETED,
    E.ACTIVITY_TASK_FAILED,
    E.ACTIVITY_TASK_TIMED_OUT,
    E.ACTIVITY_TASK_CANCEL_REQUESTED,
    E.ACTIVITY_TASK_CANCELED,
    E.TIMER_STARTED,
    E.TIMER_FIRED,
    E.MARKER_RECORDED,
    E.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    E.START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    E.CHILD_WORKFLOW_EXECUTION_STARTED,
    E.CHILD_WORKFLOW_EXECUTION_COMPLETED,
    E.CHILD_WORKFLOW_EXECUTION_FAILED,
    E.CHILD_WORKFLOW_EXECUTION_CANCELED,
    E.CHILD_WORKFLOW_EXECUTION_TERMINATED,
    E.START_CHILD_WORKFLOW_EXECUTION_FAILED,
    E.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    E.EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    E.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
    E.WORKFLOW_TASK_TIMED_OUT,
    E.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
    E.EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
    E.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
}


def test_every_closed_and_open_run_is_the_fold_of_its_history() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with (
            Worker(
                env.client, task_queue=QUEUE, workflows=EVERYDAY_WORKFLOWS, activities=EVERYDAY_ACTIVITIES
            ),
            Worker(env.client, task_queue=ANALYSIS_QUEUE, activities=[detect_watermark, classify]),
        ):
            await asyncio.gather(closed_everyday_runs(env), in_flight_task(env))
            await open_everyday_runs(env)
        seen = await assert_every_run_is_a_fold_of_its_history(env)
        missing = {t.name for t in EVERYDAY_EVENTS} - set(seen)
        assert not missing, f"the scenarios wrote no {sorted(missing)} event: the fold went untested there"
        assert seen["closed"] >= 30 and seen["open"] >= 10, seen

    run_in_env(scenario, timeout=120)


def test_runs_driven_by_skipped_time_are_the_fold_of_their_history() -> None:
    """Cron runs, long timers, run timeouts and a schedule-to-start timeout, with time skipping."""

    async def scenario(env: WorkflowEnvironment) -> None:
        c = env.client
        async with Worker(
            env.client,
            task_queue=QUEUE,
            workflows=[Tick, Sleeper, Approval, TimeoutWorkflow, WaitsForChild],
            activities=[slow],
        ):
            handle = await c.start_workflow(
                Tick.run, id="cron", task_queue=QUEUE, cron_schedule="*/5 * * * *"
            )
            run_id = handle.first_run_id
            for _ in range(3):
                h = c.get_workflow_handle("cron", run_id=run_id)
                await h.result(follow_runs=False)
                run_id = (await h.fetch_history()).events[-1].attributes["new_execution_run_id"]
            await c.get_workflow_handle("cron").terminate("enough")
            assert await c.execute_workflow(Sleeper.run, 30, id="sleeper", task_queue=QUEUE) >= 3600
            await fails(
                c.execute_workflow(
                    Approval.run, 1, id="run-timeout", task_queue=QUEUE, run_timeout=timedelta(minutes=5)
                )
            )
            await fails(
                c.execute_workflow(TimeoutWorkflow.run, "schedule_to_start", id="s2s", task_queue=QUEUE)
            )
            await fails(
                c.execute_workflow(WaitsForChild.run, "kid-timeout", 5, id="kid-timer", task_queue=QUEUE)
            )
        seen = await assert_every_run_is_a_fold_of_its_history(env)
        assert seen[E.WORKFLOW_EXECUTION_TIMED_OUT.name] == 2, seen
        assert seen[E.CHILD_WORKFLOW_EXECUTION_TIMED_OUT.name] == 1 and seen["closed"] >= 9, seen

    run_in_env(scenario, time_skipping=True)
