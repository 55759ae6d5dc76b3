"""How many workflow tasks a worker handles at once: one per poller by default, up to
``max_concurrent_workflow_tasks`` when that is larger, and never more."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .conftest import run_in_env
from .workflows import HelloWorkflow, say_hello

RUNS = 12


async def _peak_completions_in_flight(env: WorkflowEnvironment, **worker_options: Any) -> int:
    """Holds every workflow-task completion until RUNS of them wait (or nothing new arrives for a
    moment), and returns the most that waited at once; then lets all of them through."""
    service: Any = env.client.service
    plain = service.respond_workflow_task_completed
    in_flight = 0
    peak = 0
    released = asyncio.Event()
    arrived = asyncio.Event()

    async def held(request: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        arrived.set()
        await released.wait()
        in_flight -= 1
        await plain(request)

    service.respond_workflow_task_completed = held
    async with Worker(
        env.client, task_queue="conc", workflows=[HelloWorkflow], activities=[say_hello], **worker_options
    ):
        handles = [
            await env.client.start_workflow(HelloWorkflow.run, str(i), id=f"conc-{i}", task_queue="conc")
            for i in range(RUNS)
        ]
        while peak < RUNS:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), 1.0)
            except TimeoutError:
                break  # no further task reached the worker while the others were held
        released.set()
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == [f"Hello, {i}!" for i in range(RUNS)]
    return peak


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"workflow_pollers": 2}, 2),
        ({"workflow_pollers": 2, "max_concurrent_workflow_tasks": 5}, 5),
        ({"workflow_pollers": 2, "max_concurrent_workflow_tasks": 50}, RUNS),
    ],
)
def test_workflow_tasks_handled_at_once_follow_the_worker_options(
    options: dict[str, int], expected: int
) -> None:
    peak = run_in_env(lambda env: _peak_completions_in_flight(env, **options))
    assert peak == expected
