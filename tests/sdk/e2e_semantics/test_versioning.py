"""Versioning and side effects end to end: patched code meets histories recorded before it."""

from __future__ import annotations

import pytest
from e2e.conftest import run_in_env

from cadenza.exceptions import NondeterminismError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .waits import eventually, has_event
from .workflows import ShippingV1, ShippingV2, ShippingV3, SideEffects, calls, new_step, old_step

QUEUE = "shipping"


def test_a_run_started_before_a_patch_finishes_the_old_way_and_new_runs_take_the_new_way() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        activities = [old_step, new_step]
        async with Worker(client, task_queue=QUEUE, workflows=[ShippingV1], activities=activities):
            old_run = await client.start_workflow(ShippingV1.run, "a", id="ship-old", task_queue=QUEUE)
            await eventually(lambda: has_event(old_run, EventType.WORKFLOW_TASK_COMPLETED, 2))
        # The patched code is deployed while the first run, past the patch point, waits: a new
        # worker replays it from its history, which has no marker.
        async with Worker(client, task_queue=QUEUE, workflows=[ShippingV2], activities=activities):
            await old_run.signal(ShippingV2.proceed)
            assert await old_run.result() == "old a"
            new_run = await client.start_workflow(ShippingV2.run, "b", id="ship-new", task_queue=QUEUE)
            await new_run.signal(ShippingV2.proceed)
            assert await new_run.result() == "new b"
        old_history = await old_run.fetch_history()
        new_history = await new_run.fetch_history()

        markers = [e for e in new_history.events if e.event_type is EventType.MARKER_RECORDED]
        assert [m.attributes["marker_name"] for m in markers] == ["core_patch"]
        assert not any(e.event_type is EventType.MARKER_RECORDED for e in old_history.events)

        Replayer(workflows=[ShippingV2]).replay_workflow(old_history)
        Replayer(workflows=[ShippingV2]).replay_workflow(new_history)
        # Deprecation keeps replaying the runs that took the new path ...
        Replayer(workflows=[ShippingV3]).replay_workflow(new_history)
        # ... and replay still catches code that no longer matches a history.
        with pytest.raises(NondeterminismError):
            Replayer(workflows=[ShippingV3]).replay_workflow(old_history)
        with pytest.raises(NondeterminismError):
            Replayer(workflows=[ShippingV1]).replay_workflow(new_history)

    run_in_env(scenario)


def test_side_effects_run_once_and_replays_see_the_recorded_values() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        calls.clear()
        # No cache: every workflow task replays the run from its first event.
        async with Worker(env.client, task_queue="effects", workflows=[SideEffects], max_cached_workflows=0):
            handle = await env.client.start_workflow(SideEffects.run, id="effects-1", task_queue="effects")
            result = await handle.result()
        assert result["token"] == "token-1"
        assert result["again"] == 2
        assert calls["side_effect"] == 2
        history = await handle.fetch_history()
        markers = [e for e in history.events if e.event_type is EventType.MARKER_RECORDED]
        assert [m.attributes["marker_name"] for m in markers] == ["core_side_effect"] * 2
        Replayer(workflows=[SideEffects]).replay_workflow(history)
        assert calls["side_effect"] == 2

    run_in_env(scenario, time_skipping=True)
