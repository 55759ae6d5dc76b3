"""Workflows and activities the end-to-end semantics tests run.

The golden histories of ``tests/sdk/golden`` were recorded from these workflows and are replayed
against them: change them only in ways that keep those histories replaying (``patched``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from cadenza import activity, workflow
from cadenza.common import RetryPolicy
from cadenza.exceptions import ActivityError, ApplicationError, CanceledError, SessionFailedError

TIMEOUT = timedelta(seconds=10)

calls: Counter[str] = Counter()
"""How often each activity ran in this process (tests reset it)."""
_lock = threading.Lock()


def count(name: str) -> int:
    with _lock:
        calls[name] += 1
        return calls[name]


# -- versioning ------------------------------------------------------------------------------------


@activity.defn
async def old_step(name: str) -> str:
    count("old_step")
    return f"old {name}"


@activity.defn
async def new_step(name: str) -> str:
    count("new_step")
    return f"new {name}"


@workflow.defn(name="Shipping")
class ShippingV1:
    """Ships the old way, then waits for a signal to finish."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self, name: str) -> str:
        shipped = await workflow.execute_activity(old_step, name, start_to_close_timeout=TIMEOUT)
        await workflow.wait_condition(lambda: self.go)
        return shipped

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


@workflow.defn(name="Shipping")
class ShippingV2:
    """The same workflow after a change guarded by ``patched``."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self, name: str) -> str:
        if workflow.patched("ship-new-way"):
            shipped = await workflow.execute_activity(new_step, name, start_to_close_timeout=TIMEOUT)
        else:
            shipped = await workflow.execute_activity(old_step, name, start_to_close_timeout=TIMEOUT)
        await workflow.wait_condition(lambda: self.go)
        return shipped

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


@workflow.defn(name="Shipping")
class ShippingV3:
    """The change once no run on the old path remains."""

    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self, name: str) -> str:
        workflow.deprecate_patch("ship-new-way")
        shipped = await workflow.execute_activity(new_step, name, start_to_close_timeout=TIMEOUT)
        await workflow.wait_condition(lambda: self.go)
        return shipped

    @workflow.signal
    def proceed(self) -> None:
        self.go = True


# -- side effects and determinism ------------------------------------------------------------------


@workflow.defn
class SideEffects:
    """Draws nondeterministic values through side_effect, random and uuid4, across a timer."""

    @workflow.run
    async def run(self) -> dict[str, Any]:
        token = workflow.side_effect(lambda: f"token-{count('side_effect')}")
        await workflow.sleep(5)
        return {
            "token": token,
            "again": workflow.side_effect(lambda: count("side_effect")),
            "uuid": str(workflow.uuid4()),
            "random": workflow.random().randint(0, 1_000_000),
        }


# -- local activities ------------------------------------------------------------------------------


@activity.defn
async def normalize(text: str) -> str:
    count("normalize")
    return text.strip().lower()


@activity.defn
def checksum(text: str) -> int:
    count("checksum")
    return sum(text.encode()) % 997


@activity.defn
async def flaky_lookup(key: str) -> str:
    attempt = activity.info().attempt
    count("flaky_lookup")
    if attempt < 3:
        raise ApplicationError(f"attempt {attempt} failed")
    return f"{key}@{attempt}"


@activity.defn
async def rejects(key: str) -> str:
    count("rejects")
    raise ApplicationError(f"bad key {key}", type="BadKey")


@activity.defn
async def sleepy(seconds: float) -> str:
    count("sleepy")
    await asyncio.sleep(seconds)
    return "woke"


FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=5)


@workflow.defn
class LocalActivities:
    """Local activities: async and sync, retried locally, failing non-retryably, mixed with timers."""

    @workflow.run
    async def run(self, text: str) -> dict[str, Any]:
        clean = await workflow.execute_local_activity(normalize, text, start_to_close_timeout=TIMEOUT)
        total = await workflow.execute_local_activity(checksum, clean, start_to_close_timeout=TIMEOUT)
        await workflow.sleep(1)
        found = await workflow.execute_local_activity(
            flaky_lookup, clean, start_to_close_timeout=TIMEOUT, retry_policy=FAST_RETRY
        )
        try:
            await workflow.execute_local_activity(
                rejects,
                clean,
                start_to_close_timeout=TIMEOUT,
                retry_policy=RetryPolicy(non_retryable_error_types=["BadKey"]),
            )
            error = ""
        except ActivityError as err:
            error = f"{type(err.cause).__name__}: {err.cause} ({err.retry_state})"
        return {"clean": clean, "checksum": total, "found": found, "error": error}


@workflow.defn
class LocalActivityOverBudget:
    """A local activity longer than its workflow task's budget."""

    @workflow.run
    async def run(self) -> str:
        try:
            return await workflow.execute_local_activity(
                sleepy, 30.0, start_to_close_timeout=timedelta(minutes=1)
            )
        except ActivityError as err:
            return f"{type(err.cause).__name__}: {err.cause}"


# -- cancellation ----------------------------------------------------------------------------------

cancelled_activities: list[str] = []


@activity.defn
async def long_work(name: str) -> str:
    """Heartbeats until cancelled; the worker delivers the cancel as CancelledError (async activity)."""
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        cancelled_activities.append(name)
        raise


@activity.defn
async def cleanup(name: str) -> str:
    count("cleanup")
    return f"cleaned {name}"


LONG = {"start_to_close_timeout": timedelta(minutes=10), "heartbeat_timeout": timedelta(seconds=2)}


@workflow.defn
class CatchesCancel:
    """Catches the cancellation, runs a cleanup activity shielded, and completes normally."""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(long_work, "catch", **LONG)  # type: ignore[arg-type]
            return "not cancelled"
        except ActivityError as err:
            # The activity was cancelled with the workflow (TRY_CANCEL): its error says so.
            if not isinstance(err.cause, CanceledError):
                raise
            done = await asyncio.shield(
                workflow.execute_activity(cleanup, "catch", start_to_close_timeout=TIMEOUT)
            )
            return f"completed after cancel: {done}"


@workflow.defn
class ReraisesCancel:
    """Cleans up in ``finally`` and lets the cancellation end the run CANCELED."""

    @workflow.run
    async def run(self) -> str:
        try:
            await asyncio.sleep(3600)
            return "slept"
        finally:
            await workflow.execute_activity(cleanup, "reraise", start_to_close_timeout=TIMEOUT)


@workflow.defn
class CancelsOneBranch:
    """Cancels one of two activities itself, on a timer, and reports what each saw."""

    @workflow.run
    async def run(self) -> list[str]:
        first = workflow.start_activity(long_work, "branch", **LONG)  # type: ignore[arg-type]
        second = workflow.start_activity(cleanup, "branch", start_to_close_timeout=TIMEOUT)
        await workflow.sleep(0.5)
        first.cancel()
        outcomes: list[str] = []
        for handle in (first, second):
            try:
                outcomes.append(await handle)
            except ActivityError as err:
                outcomes.append(f"{type(err.cause).__name__}")
        return outcomes


# -- search attributes, memo, queries --------------------------------------------------------------

UPSERT_TIME = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


@workflow.defn
class Tagged:
    """Upserts search attributes and exposes what ``workflow.info()`` sees."""

    def __init__(self) -> None:
        self.release = False

    @workflow.run
    async def run(self, stage: str) -> dict[str, Any]:
        workflow.upsert_search_attributes({"CustomKeywordField": stage, "CustomDatetimeField": UPSERT_TIME})
        await workflow.wait_condition(lambda: self.release)
        workflow.upsert_search_attributes({"CustomIntField": 7})
        return self.snapshot()

    @workflow.signal
    def finish(self) -> None:
        self.release = True

    @workflow.query
    def snapshot(self) -> dict[str, Any]:
        info = workflow.info()
        return {
            "search_attributes": {k: repr(v) for k, v in sorted(info.search_attributes.items())},
            "memo": dict(info.memo),
        }


@activity.defn
async def wait_for_release(name: str) -> str:
    while not activity.is_cancelled():
        activity.heartbeat()
        await asyncio.sleep(0.05)
    raise asyncio.CancelledError


@workflow.defn
class Waiter:
    """Waits in several coroutines at once, for the stack-trace query."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        watcher = asyncio.create_task(self.watch(), name="watcher")
        await workflow.execute_activity(wait_for_release, "w", **LONG)  # type: ignore[arg-type]
        await watcher
        return "done"

    async def watch(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def stop(self) -> None:
        self.done = True


# -- sessions --------------------------------------------------------------------------------------


@activity.defn
async def where() -> str:
    """The queue the activity came from: in a session, the accepting worker's own queue."""
    return activity.info().task_queue


@activity.defn
async def download(name: str) -> str:
    return f"{activity.info().task_queue}|downloaded {name}"


@activity.defn
async def process(name: str) -> str:
    return f"{activity.info().task_queue}|processed {name}"


@activity.defn
async def slow_process(name: str) -> str:
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.05)


SESSION_HEARTBEAT = timedelta(seconds=1)


@workflow.defn
class FileProcessing:
    """Download, process and clean up on one worker; then again on the same worker by token."""

    @workflow.run
    async def run(self, name: str) -> dict[str, Any]:
        async with workflow.create_session(heartbeat_timeout=SESSION_HEARTBEAT) as session:
            downloaded = await workflow.execute_activity(download, name, start_to_close_timeout=TIMEOUT)
            processed = await workflow.execute_activity(process, name, start_to_close_timeout=TIMEOUT)
            token = session.recreate_token
            first_queue = session.task_queue
            assert workflow.current_session() is session
        assert workflow.current_session() is None
        state_after = session.state.value
        async with workflow.recreate_session(token, heartbeat_timeout=SESSION_HEARTBEAT) as again:
            second = await workflow.execute_activity(where, start_to_close_timeout=TIMEOUT)
        return {
            "first_queue": first_queue,
            "steps": [downloaded, processed],
            "recreated_queue": again.task_queue,
            "recreated_activity": second,
            "state_after": state_after,
        }


@workflow.defn
class SessionSurvivor:
    """Opens a session whose worker dies mid-activity, then starts over on a new session."""

    @workflow.run
    async def run(self) -> dict[str, Any]:
        outcome: dict[str, Any] = {}
        async with workflow.create_session(heartbeat_timeout=SESSION_HEARTBEAT) as session:
            outcome["first_queue"] = session.task_queue
            try:
                await workflow.execute_activity(
                    slow_process, "x", start_to_close_timeout=timedelta(minutes=5)
                )
            except ActivityError as err:
                outcome["activity_error"] = type(err.cause).__name__
            outcome["state"] = session.state.value
            try:
                await workflow.execute_activity(where, start_to_close_timeout=TIMEOUT)
            except SessionFailedError as err:
                outcome["fail_fast"] = str(err)
        async with workflow.create_session(heartbeat_timeout=SESSION_HEARTBEAT) as second:
            outcome["second_queue"] = await workflow.execute_activity(where, start_to_close_timeout=TIMEOUT)
            outcome["second_session_queue"] = second.task_queue
        return outcome


@workflow.defn
class SessionHolder:
    """Holds a session until signalled; reports the session's queue."""

    def __init__(self) -> None:
        self.release = False

    @workflow.run
    async def run(self) -> str:
        try:
            async with workflow.create_session(
                heartbeat_timeout=SESSION_HEARTBEAT, creation_timeout=timedelta(seconds=2)
            ) as session:
                await workflow.wait_condition(lambda: self.release)
                return session.task_queue
        except SessionFailedError as err:
            return f"failed: {err}"

    @workflow.signal
    def done(self) -> None:
        self.release = True
