"""Visibility end to end in one process: engine outbox → embedded log → indexer → SQLite store, then
list, scan and count through the client's service with the query language."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from cadenza import workflow
from cadenza.exceptions import RPCError
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .conftest import run_in_env
from .workflows import Approval, HelloWorkflow, say_hello


@workflow.defn
class Tagged:
    @workflow.run
    async def run(self, customer: str) -> str:
        workflow.upsert_search_attributes({"CustomerId": customer, "Priority": 7})
        await asyncio.sleep(0.01)
        return customer


async def _eventually(fn, predicate, tries: int = 300):  # type: ignore[no-untyped-def]
    for _ in range(tries):
        value = await fn()
        if predicate(value):
            return value
        await asyncio.sleep(0.01)
    return value


def test_started_upserted_and_closed_workflows_are_listed_with_their_latest_state() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        svc = env.client.service
        await svc.add_search_attributes({"CustomerId": "Keyword", "Priority": "Int"})  # type: ignore[attr-defined]
        async with Worker(
            env.client, task_queue="vis", workflows=[Tagged, HelloWorkflow, Approval], activities=[say_hello]
        ):
            for c in ("acme", "globex"):
                await env.client.execute_workflow(Tagged.run, c, id=f"tagged-{c}", task_queue="vis")
            await env.client.execute_workflow(HelloWorkflow.run, "x", id="hello-vis", task_queue="vis")
            await env.client.start_workflow(
                Approval.run, 1, id="open-vis", task_queue="vis", search_attributes={"CustomerId": "acme"}
            )

            async def acme() -> list:  # type: ignore[type-arg]
                resp = await svc.list_workflow_executions(  # type: ignore[attr-defined]
                    "default", "CustomerId = 'acme' AND ExecutionStatus = 'Completed'", 10
                )
                return resp.executions

            rows = await _eventually(acme, lambda r: len(r) == 1)
            assert [r.workflow_id for r in rows] == ["tagged-acme"]
            assert rows[0].workflow_type == "Tagged" and rows[0].close_time > 0

            counts = await _eventually(
                lambda: svc.count_workflow_executions("default", "", group_by_status=True),  # type: ignore[attr-defined]
                lambda c: c.groups.get("Completed") == 3 and c.groups.get("Running") == 1,
            )
            assert counts.count == 4
            page = await svc.list_workflow_executions(  # type: ignore[attr-defined]
                "default", "Priority >= 7 ORDER BY WorkflowId DESC", 1
            )
            assert [r.workflow_id for r in page.executions] == ["tagged-globex"] and page.next_page_token
            page2 = await svc.list_workflow_executions(  # type: ignore[attr-defined]
                "default", "Priority >= 7 ORDER BY WorkflowId DESC", 1, page.next_page_token
            )
            assert [r.workflow_id for r in page2.executions] == ["tagged-acme"]

    run_in_env(scenario)


def test_a_bad_query_or_unknown_attribute_is_refused_with_its_position() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        svc = env.client.service
        with pytest.raises(RPCError) as info:
            await svc.list_workflow_executions("default", "WorkflowType = ", 10)  # type: ignore[attr-defined]
        assert info.value.status == "INVALID_ARGUMENT"
        with pytest.raises(RPCError, match="Nope"):
            await svc.count_workflow_executions("default", "Nope = 1")  # type: ignore[attr-defined]
        with pytest.raises(RPCError, match="search_attributes"):
            await env.client.start_workflow(
                Approval.run,
                1,
                id="bad-sa",
                task_queue="q",
                search_attributes={"Undeclared": "x"},
                run_timeout=timedelta(seconds=5),
            )

    run_in_env(scenario)
