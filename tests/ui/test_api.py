"""The web UI's JSON API against a real server: every endpoint, bad input, paging."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from cadenza.sdk.history import WorkflowHistory
from cadenza.worker import Replayer, Worker

from .conftest import UIHarness, eventually, ui_harness
from .workflows import TASK_QUEUE, Greeter, Quick, shout

WF = "/api/v1/namespaces/default/workflows"


def run(scenario: Callable[[UIHarness], Awaitable[Any]], timeout: float = 60.0) -> Any:
    async def main() -> Any:
        async with ui_harness() as ui:
            async with Worker(
                ui.client, task_queue=TASK_QUEUE, workflows=[Greeter, Quick], activities=[shout]
            ):
                return await asyncio.wait_for(scenario(ui), timeout)

    return asyncio.run(main())


async def _greeter(ui: UIHarness, wid: str, name: str = "ada") -> Any:
    handle = await ui.client.start_workflow(Greeter.run, name, id=wid, task_queue=TASK_QUEUE)

    async def timer_started() -> bool:
        _, tl = await ui.get(f"{WF}/{wid}/timeline")
        return bool(tl["pending_timers"])

    await eventually(timer_started, f"{wid} to wait for its signal")
    return handle


async def _listed(ui: UIHarness, query: str, count: int) -> None:
    async def indexed() -> bool:
        status, body = await ui.get("/api/v1/namespaces/default/workflow-counts", query=query)
        return status == 200 and body["count"] == count

    await eventually(indexed, f"{count} runs matching {query!r} to be indexed")


def test_namespaces_list_and_detail_and_unknown_namespace_is_not_found() -> None:
    async def scenario(ui: UIHarness) -> None:
        status, body = await ui.get("/api/v1/namespaces")
        assert status == 200
        assert [n["name"] for n in body["namespaces"]] == ["default"]
        status, body = await ui.get("/api/v1/namespaces/default")
        assert status == 200 and body["retention_days"] == 3 and body["is_global"] is False
        status, body = await ui.get("/api/v1/namespaces/nope")
        assert status == 404 and body["error"]["status"] == "NOT_FOUND" and "nope" in body["error"]["message"]
        status, body = await ui.get("/api/v1/namespaces/nope/workflows")
        assert status == 404

    run(scenario)


def test_list_pages_through_every_run_once_and_counts_by_status() -> None:
    async def scenario(ui: UIHarness) -> None:
        for i in range(7):
            await ui.client.execute_workflow(Quick.run, i, id=f"quick-{i}", task_queue=TASK_QUEUE)
        await _greeter(ui, "greeter-1")
        await _listed(ui, "", 8)
        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            params = {"page_size": "3", **({"next_page_token": token} if token else {})}
            status, body = await ui.get(WF, **params)
            assert status == 200
            assert len(body["executions"]) <= 3
            seen += [e["workflow_id"] for e in body["executions"]]
            pages += 1
            token = body["next_page_token"]
            if token is None:
                break
        assert sorted(seen) == sorted([f"quick-{i}" for i in range(7)] + ["greeter-1"])
        assert pages >= 3
        status, body = await ui.get("/api/v1/namespaces/default/workflow-counts")
        assert body == {"count": 8, "groups": {"Completed": 7, "Running": 1}}
        status, body = await ui.get(WF, query="ExecutionStatus = 'Running'")
        assert [e["workflow_id"] for e in body["executions"]] == ["greeter-1"]
        assert body["executions"][0]["status"] == "Running"

    run(scenario)


def test_list_refuses_a_bad_page_size_a_foreign_token_and_a_malformed_query_with_its_position() -> None:
    async def scenario(ui: UIHarness) -> None:
        status, body = await ui.get(WF, page_size="0")
        assert status == 400
        assert (
            body["error"]["field"] == "page_size" and "between 1 and 1000 (got 0)" in body["error"]["message"]
        )
        status, body = await ui.get(WF, page_size="many")
        assert status == 400 and "'many'" in body["error"]["message"]
        status, body = await ui.get(WF, next_page_token="%%%not-base64")
        assert status == 400 and body["error"]["field"] == "next_page_token"
        query = "WorkflowType = 'Greeter' AND AND"
        status, body = await ui.get(WF, query=query)
        assert status == 400
        assert body["error"]["status"] == "INVALID_ARGUMENT"
        assert body["error"]["position"] == query.index("AND AND") + 4
        assert "position" in body["error"]["message"]
        status, body = await ui.get("/api/v1/namespaces/default/workflow-counts", query="Nope = 1")
        assert status == 400 and "Nope" in body["error"]["message"]

    run(scenario)


def test_describe_decodes_input_and_result_and_an_unknown_workflow_is_not_found() -> None:
    async def scenario(ui: UIHarness) -> None:
        await ui.client.execute_workflow(Quick.run, 21, id="quick-d", task_queue=TASK_QUEUE)
        status, body = await ui.get(f"{WF}/quick-d")
        assert status == 200
        assert body["execution"]["status"] == "COMPLETED"
        assert body["execution"]["workflow_type"] == "Quick"
        assert body["input"] == [{"encoding": "json/plain", "json": 21}]
        assert body["close_event"]["event_type"] == "WorkflowExecutionCompleted"
        assert body["close_event"]["attributes"]["result"] == [{"encoding": "json/plain", "json": 42}]
        status, body = await ui.get(f"{WF}/no-such-workflow")
        assert status == 404 and "no-such-workflow" in body["error"]["message"]
        status, body = await ui.get(f"{WF}/quick-d", run_id="00000000-0000-0000-0000-000000000000")
        assert status == 404

    run(scenario)


def test_history_pages_by_token_and_follows_from_an_event_id() -> None:
    async def scenario(ui: UIHarness) -> None:
        await ui.client.execute_workflow(Quick.run, 1, id="quick-h", task_queue=TASK_QUEUE)
        ids: list[int] = []
        token = None
        while True:
            params = {"page_size": "2", **({"next_page_token": token} if token else {})}
            status, body = await ui.get(f"{WF}/quick-h/history", **params)
            assert status == 200 and len(body["events"]) <= 2
            ids += [e["event_id"] for e in body["events"]]
            token = body["next_page_token"]
            if token is None:
                break
        assert ids == list(range(1, len(ids) + 1)) and len(ids) >= 5
        status, body = await ui.get(f"{WF}/quick-h/history", first_event_id="3")
        assert [e["event_id"] for e in body["events"]] == ids[2:]
        status, body = await ui.get(f"{WF}/quick-h/history", first_event_id="3", next_page_token="Mw==")
        assert status == 400 and body["error"]["field"] == "first_event_id"
        status, body = await ui.get(f"{WF}/quick-h/history", page_size="1001")
        assert status == 400 and "1000" in body["error"]["message"]
        status, body = await ui.get(f"{WF}/quick-h/history", wait="perhaps")
        assert status == 400 and body["error"]["field"] == "wait"

    run(scenario)


def test_download_is_the_json_the_replayer_takes() -> None:
    async def scenario(ui: UIHarness) -> None:
        await ui.client.execute_workflow(Quick.run, 5, id="quick-r", task_queue=TASK_QUEUE)
        async with ui.http.get(f"{ui.url}{WF}/quick-r/history.json") as resp:
            assert resp.status == 200
            assert "attachment" in resp.headers["Content-Disposition"]
            text = await resp.text()
        history = WorkflowHistory.from_json(text)
        assert history.workflow_id == "quick-r"
        assert history.events[-1].event_type.pascal_name == "WorkflowExecutionCompleted"
        Replayer(workflows=[Quick]).replay_workflow(history)

    run(scenario)


def test_timeline_signal_query_and_terminate() -> None:
    async def scenario(ui: UIHarness) -> None:
        handle = await _greeter(ui, "greeter-t")
        status, tl = await ui.get(f"{WF}/greeter-t/timeline")
        assert status == 200
        kinds = [(s["kind"], s["name"], s["status"]) for s in tl["spans"]]
        assert kinds == [("activity", "shout", "Completed"), ("timer", "1h", "Pending")]
        assert tl["pending_timers"][0]["end_time"] == 0
        assert tl["workflow_tasks"], "the reset choices: completed workflow tasks"

        status, body = await ui.post(f"{WF}/greeter-t/signal", raw="{not json")
        assert status == 400 and "not JSON" in body["error"]["message"]
        status, body = await ui.post(f"{WF}/greeter-t/signal", {"input": ["x"]})
        assert status == 400 and body["error"]["field"] == "name"
        status, body = await ui.post(f"{WF}/greeter-t/signal", {"name": "note", "input": "x"})
        assert status == 400 and body["error"]["field"] == "input"
        status, body = await ui.post(f"{WF}/greeter-t/signal", {"name": "note", "input": ["from the UI"]})
        assert status == 200

        async def noted() -> bool:
            status, body = await ui.post(f"{WF}/greeter-t/query", {"type": "seen"})
            return status == 200 and body["result"] == [{"encoding": "json/plain", "json": ["from the UI"]}]

        await eventually(noted, "the signal to reach the workflow")
        status, body = await ui.post(f"{WF}/greeter-t/query", {"type": "__stack_trace"})
        assert status == 200 and "workflows.py" in json.dumps(body["result"])
        status, body = await ui.post(f"{WF}/greeter-t/query", {"type": "no_such_query"})
        assert status == 400 and body["error"]["status"] == "QUERY_FAILED"

        status, body = await ui.post(f"{WF}/greeter-t/terminate", {"reason": 7})
        assert status == 400 and body["error"]["field"] == "reason"
        status, body = await ui.post(f"{WF}/greeter-t/terminate", {"reason": "enough"})
        assert status == 200
        d = await handle.describe()
        assert d.status.name == "TERMINATED"
        _, tl = await ui.get(f"{WF}/greeter-t/timeline")
        assert tl["pending_timers"] == [] and tl["spans"][-1]["status"] == "Abandoned"
        _, body = await ui.get(f"{WF}/greeter-t")
        assert body["close_event"]["attributes"]["reason"] == "enough"
        assert body["close_event"]["attributes"]["identity"] == "cadenza-web-ui"
        status, body = await ui.post(f"{WF}/greeter-t/signal", {"name": "note", "input": ["late"]})
        assert status in (400, 404, 409) and body["error"]["message"]

    run(scenario)


def test_cancel_and_reset() -> None:
    async def scenario(ui: UIHarness) -> None:
        await _greeter(ui, "greeter-c")
        _, tl = await ui.get(f"{WF}/greeter-c/timeline")
        first_task = tl["workflow_tasks"][0]["event_id"]
        status, body = await ui.post(f"{WF}/greeter-c/reset", {"event_id": 9999, "reason": "try"})
        assert status == 400 and "9999" in body["error"]["message"]
        status, body = await ui.post(f"{WF}/greeter-c/reset", {"event_id": first_task})
        assert status == 400 and body["error"]["field"] == "reason"
        status, body = await ui.post(f"{WF}/greeter-c/reset", {"event_id": "4", "reason": "x"})
        assert status == 400 and body["error"]["field"] == "event_id"
        status, body = await ui.post(f"{WF}/greeter-c/reset", {"event_id": first_task, "reason": "again"})
        assert status == 200
        new_run = body["run_id"]
        _, d = await ui.get(f"{WF}/greeter-c")
        assert d["execution"]["run_id"] == new_run

        status, body = await ui.post(f"{WF}/greeter-c/cancel")
        assert status == 200

        async def canceled() -> bool:
            _, d = await ui.get(f"{WF}/greeter-c")
            return bool(d["execution"]["status"] == "CANCELED")

        await eventually(canceled, "the run to be canceled")

    run(scenario)


def test_cluster_task_queue_search_attributes_and_unknown_paths() -> None:
    async def scenario(ui: UIHarness) -> None:
        status, c = await ui.get("/api/v1/cluster")
        assert status == 200 and c["current_cluster"] == "active" and c["replication"] is None
        assert [k["name"] for k in c["clusters"]] == ["active"]
        status, tq = await ui.get("/api/v1/namespaces/default/task-queues/nobody-polls-this")
        assert status == 200
        assert tq["workflow"] == {"backlog": 0, "pollers": []} and tq["activity"]["pollers"] == []
        status, body = await ui.get("/api/v1/namespaces/nope/task-queues/x")
        assert status == 404

        seen: dict[str, Any] = {}

        async def polled() -> bool:
            # The worker of this test polls both kinds of task of its queue.
            status, tq = await ui.get(f"/api/v1/namespaces/default/task-queues/{TASK_QUEUE}")
            seen.update(tq)
            return status == 200 and all(tq[kind]["pollers"] for kind in ("workflow", "activity"))

        await eventually(polled, "the worker's polls")
        [wf], [act] = seen["workflow"]["pollers"], seen["activity"]["pollers"]
        assert wf["identity"] == act["identity"] and TASK_QUEUE in wf["identity"]
        assert wf["last_access_time"] > 0 and act["sticky_task_queue"] == ""
        status, sa = await ui.get("/api/v1/namespaces/default/search-attributes")
        assert status == 200 and sa["search_attributes"]["CustomKeywordField"] == "Keyword"
        status, body = await ui.get("/api/v1/nothing-here")
        assert status == 404 and body["error"]["status"] == "NOT_FOUND"
        async with ui.http.get(f"{ui.url}/namespaces/default/workflows/some-id") as resp:
            assert resp.status == 200 and "<main" in await resp.text()
        async with ui.http.get(f"{ui.url}/static/app.js") as resp:
            assert resp.status == 200 and "function route" in await resp.text()
        async with ui.http.get(f"{ui.url}/api/v1/namespaces") as resp:
            assert resp.headers["Server-Timing"].startswith("app;dur=")

    run(scenario)


def test_a_workflow_id_with_a_slash_and_spaces_round_trips() -> None:
    async def scenario(ui: UIHarness) -> None:
        wid = "orders/2026 12/quick"
        await ui.client.execute_workflow(Quick.run, 3, id=wid, task_queue=TASK_QUEUE)
        from urllib.parse import quote

        status, body = await ui.get(f"{WF}/{quote(wid, safe='')}")
        assert status == 200 and body["execution"]["workflow_id"] == wid

    run(scenario)
