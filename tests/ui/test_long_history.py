"""A run of more than 10,000 events: the history API pages, the timeline is folded page by page
(right across the whole history, only the new events on a refresh, capped for longer runs)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cadenza.schemas.service import GetHistoryRequest, WorkflowExecution
from cadenza.sdk._local import local_service
from cadenza.sdk.converter import default_converter
from cadenza.ui import timeline as timeline_module
from cadenza.ui.timeline import Timelines
from cadenza.worker import Worker

from .conftest import UIHarness, eventually, ui_harness
from .workflows import TASK_QUEUE, Tally, shout

WF = "/api/v1/namespaces/default/workflows"
SIGNALS = 10_000


async def signal_many(ui: UIHarness, workflow_id: str, count: int, value: int = 1) -> None:
    """``count`` ``add(value)`` signals through the server's frontend in process (a second or so
    for 10,000, the most one run takes)."""
    service = local_service(ui.server.host.frontend)
    one = default_converter().to_payloads([value])
    gate = asyncio.Semaphore(64)

    async def signal() -> None:
        async with gate:
            await service.signal_workflow_execution("default", WorkflowExecution(workflow_id), "add", one)

    await asyncio.gather(*(signal() for _ in range(count)))


async def long_run(ui: UIHarness, workflow_id: str, target: int, signals: int) -> Any:
    """A ``Tally`` run with ``signals`` signals recorded (and open while ``signals < target``)."""
    handle = await ui.client.start_workflow(Tally.run, target, id=workflow_id, task_queue=TASK_QUEUE)
    await signal_many(ui, workflow_id, signals)

    async def recorded() -> bool:
        return (await handle.describe()).history_length > signals

    await eventually(recorded, f"{signals} signals in the history of {workflow_id}")
    return handle


class CountingService:
    """The UI's service, recording the first event id of every history page asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.first_event_ids: list[int] = []

    async def get_workflow_execution_history(self, request: GetHistoryRequest) -> Any:
        self.first_event_ids.append(int(request.next_page_token or b"1"))
        return await self.inner.get_workflow_execution_history(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run(scenario: Any) -> None:
    async def main() -> None:
        async with ui_harness() as ui:
            async with Worker(ui.client, task_queue=TASK_QUEUE, workflows=[Tally], activities=[shout]):
                await asyncio.wait_for(scenario(ui), 120)

    asyncio.run(main())


def test_a_ten_thousand_event_history_pages_and_its_timeline_spans_all_of_it() -> None:
    async def scenario(ui: UIHarness) -> None:
        handle = await long_run(ui, "tally-long", SIGNALS, SIGNALS)
        assert await handle.result() == SIGNALS
        length = (await handle.describe()).history_length
        assert length > SIGNALS

        # The page the UI asks for first: 200 events and a token, not the whole history.
        status, first = await ui.get(f"{WF}/tally-long/history")
        assert status == 200 and len(first["events"]) == 200 and first["next_page_token"]
        ids: list[int] = []
        token = None
        pages = 0
        while True:
            params = {"page_size": "1000", **({"next_page_token": token} if token else {})}
            status, page = await ui.get(f"{WF}/tally-long/history", **params)
            assert status == 200 and len(page["events"]) <= 1000
            ids += [e["event_id"] for e in page["events"]]
            pages += 1
            token = page["next_page_token"]
            if token is None:
                break
        assert ids == list(range(1, length + 1)) and pages == -(-length // 1000)

        status, tl = await ui.get(f"{WF}/tally-long/timeline")
        assert status == 200 and tl["truncated"] is False and tl["events_folded"] == length
        spans = [(s["kind"], s["name"], s["status"]) for s in tl["spans"]]
        assert spans == [("activity", "shout", "Completed")] * 2
        # The second activity is scheduled after the signals: the fold read past the first pages.
        assert tl["spans"][1]["start_event_id"] > SIGNALS
        assert tl["workflow_tasks"][-1]["event_id"] > SIGNALS

    run(scenario)


def test_an_open_runs_timeline_reads_only_the_new_events_on_a_refresh() -> None:
    async def scenario(ui: UIHarness) -> None:
        handle = await long_run(ui, "tally-open", 3000, 1500)
        service = CountingService(local_service(ui.server.host.frontend))
        timelines = Timelines(service)
        pinned = WorkflowExecution("tally-open", (await handle.describe()).run_id)
        first = await timelines.timeline("default", pinned)
        folded = first["events_folded"]
        assert folded > 1500 and service.first_event_ids == list(range(1, folded + 1, 1000))
        assert [s["status"] for s in first["spans"]] == ["Completed"]

        service.first_event_ids.clear()
        await signal_many(ui, "tally-open", 1500)
        assert await handle.result() == 3000
        second = await timelines.timeline("default", pinned)
        assert service.first_event_ids[0] == folded + 1  # only what came after the first fold
        assert second["events_folded"] == (await handle.describe()).history_length
        assert [s["status"] for s in second["spans"]] == ["Completed", "Completed"]

        service.first_event_ids.clear()
        assert await timelines.timeline("default", pinned) == second
        assert service.first_event_ids == []  # a closed run's fold is final: nothing is read

    run(scenario)


def test_a_timeline_past_its_limit_says_so_and_shows_the_first_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(timeline_module, "MAX_TIMELINE_EVENTS", 2500)

    async def scenario(ui: UIHarness) -> None:
        handle = await long_run(ui, "tally-capped", 3000, 3000)
        assert await handle.result() == 3000
        timelines = Timelines(local_service(ui.server.host.frontend))
        tl = await timelines.timeline("default", WorkflowExecution("tally-capped"))
        assert tl["truncated"] is True and tl["events_folded"] == 2500 and tl["max_events"] == 2500
        assert [(s["name"], s["status"]) for s in tl["spans"]] == [("shout", "Completed")]

    run(scenario)
