"""Record the golden histories of tests/sdk/golden/*.json against the in-process engine.

Run from the project root: ``.venv/bin/python tests/sdk/golden/make_golden.py``. Re-record only when
a history format change is intended; ``test_golden.py`` replays the committed files against the
current code, so a change that breaks replay of a recorded history fails the build.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Runnable as a script: make ``sdk.*`` (the tests' top-level package) importable.
sys.path.insert(0, str(HERE.parents[1]))

from cadenza.client import WorkflowHandle  # noqa: E402
from cadenza.schemas.events import EventType  # noqa: E402
from cadenza.testing import WorkflowEnvironment  # noqa: E402
from cadenza.worker import Worker  # noqa: E402
from sdk.e2e_semantics import workflows as w  # noqa: E402
from sdk.e2e_semantics.waits import activity_started, eventually, has_event  # noqa: E402

QUEUE = "golden"
ACTIVITIES: list[Callable[..., Any]] = [
    w.old_step,
    w.new_step,
    w.normalize,
    w.checksum,
    w.flaky_lookup,
    w.rejects,
    w.sleepy,
    w.long_work,
    w.cleanup,
    w.wait_for_release,
]
SESSION_ACTIVITIES: list[Callable[..., Any]] = [w.download, w.process, w.slow_process, w.where]

Recorder = Callable[[WorkflowEnvironment], Awaitable[WorkflowHandle[Any]]]


def _worker(env: WorkflowEnvironment, *workflows: type) -> Worker:
    return Worker(env.client, task_queue=QUEUE, workflows=list(workflows), activities=ACTIVITIES)


async def shipping(env: WorkflowEnvironment, cls: type, workflow_id: str) -> WorkflowHandle[Any]:
    async with _worker(env, cls):
        handle = await env.client.start_workflow(cls.run, "parcel", id=workflow_id, task_queue=QUEUE)  # type: ignore[attr-defined]
        await eventually(lambda: has_event(handle, EventType.WORKFLOW_TASK_COMPLETED, 2))
        await handle.signal("proceed")
        await handle.result()
    return handle


async def side_effects(env: WorkflowEnvironment) -> WorkflowHandle[Any]:
    async with _worker(env, w.SideEffects):
        handle = await env.client.start_workflow(w.SideEffects.run, id="side-effects", task_queue=QUEUE)
        await handle.result()
    return handle


async def local_activities(env: WorkflowEnvironment) -> WorkflowHandle[Any]:
    async with _worker(env, w.LocalActivities):
        handle = await env.client.start_workflow(
            w.LocalActivities.run, " Golden ", id="local-activities", task_queue=QUEUE
        )
        await handle.result()
    return handle


async def cancel_caught(env: WorkflowEnvironment) -> WorkflowHandle[Any]:
    async with _worker(env, w.CatchesCancel):
        handle = await env.client.start_workflow(w.CatchesCancel.run, id="cancel-caught", task_queue=QUEUE)
        await eventually(lambda: activity_started(handle, "long_work"))
        await handle.cancel()
        await handle.result()
    return handle


async def cancel_reraised(env: WorkflowEnvironment) -> WorkflowHandle[Any]:
    async with _worker(env, w.ReraisesCancel):
        handle = await env.client.start_workflow(w.ReraisesCancel.run, id="cancel-reraised", task_queue=QUEUE)
        await eventually(lambda: has_event(handle, EventType.TIMER_STARTED))
        await handle.cancel()
        await eventually(lambda: has_event(handle, EventType.WORKFLOW_EXECUTION_CANCELED))
    return handle


async def cancel_branch(env: WorkflowEnvironment) -> WorkflowHandle[Any]:
    async with _worker(env, w.CancelsOneBranch):
        handle = await env.client.start_workflow(w.CancelsOneBranch.run, id="cancel-branch", task_queue=QUEUE)
        await handle.result()
    return handle


async def search_attributes(env: WorkflowEnvironment) -> WorkflowHandle[Any]:
    async with _worker(env, w.Tagged):
        handle = await env.client.start_workflow(
            w.Tagged.run,
            "golden",
            id="search-attributes",
            task_queue=QUEUE,
            memo={"owner": "golden"},
            search_attributes={"CustomKeywordField": "start"},
        )
        await eventually(lambda: has_event(handle, EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES))
        await handle.signal(w.Tagged.finish)
        await handle.result()
    return handle


def _session_worker(env: WorkflowEnvironment, name: str) -> Worker:
    return Worker(
        env.client,
        task_queue=QUEUE,
        activities=SESSION_ACTIVITIES,
        max_concurrent_sessions=2,
        identity=f"golden-{name}",
    )


async def session_files(env: WorkflowEnvironment) -> WorkflowHandle[Any]:
    async with _worker(env, w.FileProcessing), _session_worker(env, "a"):
        handle = await env.client.start_workflow(
            w.FileProcessing.run, "f", id="session-files", task_queue=QUEUE
        )
        await handle.result()
    return handle


async def session_failed(env: WorkflowEnvironment) -> WorkflowHandle[Any]:
    async with _worker(env, w.SessionSurvivor):
        doomed = _session_worker(env, "doomed")
        doomed.start()
        handle = await env.client.start_workflow(w.SessionSurvivor.run, id="session-failed", task_queue=QUEUE)
        await eventually(lambda: activity_started(handle, "slow_process"))
        async with _session_worker(env, "spare"):
            await doomed.abandon()
            await handle.result()
    return handle


RECORDERS: dict[str, tuple[Recorder, bool]] = {
    "shipping_old_path": (lambda env: shipping(env, w.ShippingV1, "shipping-old"), False),
    "shipping_patched": (lambda env: shipping(env, w.ShippingV2, "shipping-new"), False),
    "shipping_deprecated": (lambda env: shipping(env, w.ShippingV3, "shipping-deprecated"), False),
    "side_effects": (side_effects, True),
    "local_activities": (local_activities, True),
    "cancel_caught": (cancel_caught, False),
    "cancel_reraised": (cancel_reraised, False),
    "cancel_branch": (cancel_branch, False),
    "search_attributes": (search_attributes, False),
    "session_files": (session_files, False),
    "session_failed": (session_failed, False),
}
"""File stem -> (recorder, whether it runs with time skipping)."""


async def record(name: str) -> None:
    recorder, skipping = RECORDERS[name]
    env = await (WorkflowEnvironment.start_time_skipping() if skipping else WorkflowEnvironment.start_local())
    try:
        handle = await recorder(env)
        history = await handle.fetch_history()
    finally:
        await env.shutdown()
    history.write(HERE / f"{name}.json")
    print(f"{name}.json: {len(history.events)} events")


def main(names: list[str]) -> None:
    for name in names or list(RECORDERS):
        asyncio.run(record(name))


if __name__ == "__main__":
    main(sys.argv[1:])
