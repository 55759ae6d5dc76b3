"""Search attributes and memo: set at start, upserted (event 40), seen by workflow.info()."""

from __future__ import annotations

from e2e.conftest import run_in_env

from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .waits import eventually, has_event
from .workflows import UPSERT_TIME, Tagged


def test_upserts_are_recorded_and_workflow_info_reflects_start_values_and_upserts() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="tags", workflows=[Tagged], max_cached_workflows=0):
            handle = await env.client.start_workflow(
                Tagged.run,
                "review",
                id="tags-1",
                task_queue="tags",
                memo={"owner": "ana", "limits": {"max": 3}},
                search_attributes={"CustomKeywordField": "start", "CustomBoolField": True},
            )
            await eventually(lambda: has_event(handle, EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES))
            during = await handle.query(Tagged.snapshot)
            assert during == {
                "search_attributes": {
                    "CustomBoolField": "True",
                    "CustomDatetimeField": repr(UPSERT_TIME),
                    "CustomKeywordField": "'review'",
                },
                "memo": {"owner": "ana", "limits": {"max": 3}},
            }
            await handle.signal(Tagged.finish)
            result = await handle.result()
        assert result["search_attributes"]["CustomIntField"] == "7"
        assert result["search_attributes"]["CustomKeywordField"] == "'review'"
        history = await handle.fetch_history()
        upserts = [e for e in history.events if e.event_type is EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES]
        assert [sorted(e.attributes["search_attributes"]) for e in upserts] == [
            ["CustomDatetimeField", "CustomKeywordField"],
            ["CustomIntField"],
        ]
        assert upserts[0].event_type.value == 40
        described = (await handle.describe()).search_attributes
        assert {"CustomKeywordField", "CustomIntField", "CustomDatetimeField"} <= set(described)
        Replayer(workflows=[Tagged]).replay_workflow(history)

    run_in_env(scenario)
