"""``ActivityEnvironment``: activity functions run in a test with a context and no worker."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from cadenza import activity
from cadenza.exceptions import CanceledError
from cadenza.testing import ActivityEnvironment


@activity.defn
async def greet(name: str) -> str:
    activity.heartbeat("halfway")
    info = activity.info()
    return f"hello {name} from {info.activity_type} attempt {info.attempt}"


@activity.defn
async def wait_forever() -> None:
    activity.heartbeat("waiting")
    await asyncio.sleep(3600)


@activity.defn
def sync_loop(started: threading.Event) -> str:
    started.set()
    while True:
        activity.heartbeat()  # raises CanceledError once cancelled
        if activity.is_worker_shutdown():
            return "shutting down"


def test_an_async_activity_sees_its_info_and_its_heartbeats_are_recorded() -> None:
    env = ActivityEnvironment()
    beats: list[tuple[object, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    env.info = dataclasses.replace(env.info, activity_type="greet", attempt=3)
    assert asyncio.run(env.run(greet, "ada")) == "hello ada from greet attempt 3"
    assert beats == [("halfway",)]


def test_cancel_cancels_an_async_activity() -> None:
    env = ActivityEnvironment()

    async def scenario() -> None:
        task = asyncio.ensure_future(env.run(wait_forever))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_cancel_reaches_a_sync_activity_through_its_heartbeat() -> None:
    env = ActivityEnvironment()
    started = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            env.run(sync_loop, started)
        except BaseException as e:
            failures.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    env.cancel()
    thread.join(10)
    assert len(failures) == 1 and isinstance(failures[0], CanceledError)


def test_worker_shutdown_is_seen_by_the_activity() -> None:
    env = ActivityEnvironment()
    env.worker_shutdown()
    assert env.run(sync_loop, threading.Event()) == "shutting down"


def test_outside_run_there_is_no_activity_context() -> None:
    with pytest.raises(RuntimeError, match="Not in an activity"):
        activity.info()
