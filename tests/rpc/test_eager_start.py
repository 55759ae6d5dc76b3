"""Eager workflow start (temporalio's ``request_eager_start=True``): with a worker of the same client
running the workflow on the task queue, the server starts the run's first workflow task for that
worker and returns it with the start, so the worker handles it without a poll. Without such a
worker (or for a delayed or cron start) the start is an ordinary one. In process and over gRPC."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from e2e.conftest import run_in_env

from cadenza import workflow
from cadenza.schemas.events import EventType
from cadenza.worker import Worker

from .conftest import run_in_grpc_env


@workflow.defn
class Greet:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"Hello, {name}!"


def _eager(handle: Any) -> bool:
    return bool(getattr(handle, "__cadenza_eagerly_started", False)) and bool(
        getattr(handle, "__temporal_eagerly_started", False)
    )


def scenario(env: Any) -> Awaitable[None]:
    async def run() -> None:
        async with Worker(env.client, task_queue="eager", workflows=[Greet]):
            handle = await env.client.start_workflow(
                Greet.run, "eager", id="eager-1", task_queue="eager", request_eager_start=True
            )
            assert _eager(handle)
            assert await handle.result() == "Hello, eager!"
            assert _first_task_ran_once(await handle.fetch_history())

            # A delayed start: an ordinary one.
            delayed = await env.client.start_workflow(
                Greet.run,
                "later",
                id="eager-2",
                task_queue="eager",
                request_eager_start=True,
                start_delay=timedelta(milliseconds=10),
            )
            assert not _eager(delayed)
            assert await delayed.result() == "Hello, later!"
        # No worker any more: an ordinary start, taken by the next worker that polls.
        handle = await env.client.start_workflow(
            Greet.run, "polled", id="eager-3", task_queue="eager", request_eager_start=True
        )
        assert not _eager(handle)
        async with Worker(env.client, task_queue="eager", workflows=[Greet]):
            assert await handle.result() == "Hello, polled!"

    return run()


def test_eager_start_in_process() -> None:
    run_in_env(scenario)


def test_eager_start_over_grpc_hands_the_first_task_back_with_the_start() -> None:
    async def one(env: Any) -> None:
        async with Worker(env.client, task_queue="eager-one", workflows=[Greet], max_cached_workflows=0):
            handle = await env.client.start_workflow(
                Greet.run, "wire", id="eager-wire", task_queue="eager-one", request_eager_start=True
            )
            assert _eager(handle)
            assert await handle.result() == "Hello, wire!"
            assert _first_task_ran_once(await handle.fetch_history())

    run_in_grpc_env(one)
    run_in_grpc_env(scenario)


def _first_task_ran_once(history: Any) -> bool:
    """The task handed back was the one that ran: no timeout, no second attempt of it."""
    types = [EventType(e.event_type) for e in history.events]
    return (
        EventType.WORKFLOW_TASK_TIMED_OUT not in types and types.count(EventType.WORKFLOW_TASK_STARTED) == 1
    )
