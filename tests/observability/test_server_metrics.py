"""Server metrics: the anchors' names and tags, and counters that move for real workflows."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from cadenza.client import Client
from cadenza.engine.persistence.errors import ConditionFailedError, StoreUnavailableError
from cadenza.engine.rpc import RpcServer
from cadenza.exceptions import WorkflowAlreadyStartedError
from cadenza.metrics import MetricsRegistry, ServerMetrics
from cadenza.metrics.persistence import metered_stores
from cadenza.sdk.exceptions import RPCError
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .scrape import Scrape, scrape_registry
from .workflows import ACTIVITIES, WORKFLOWS, Hello, Sleeper, run_all

ANCHOR_FAMILIES = [
    "service_requests",
    "service_latency",
    "service_errors",
    "service_errors_invalid_argument",
    "service_errors_entity_not_found",
    "service_errors_execution_already_started",
    "service_errors_resource_exhausted",
    "service_errors_namespace_not_active",
    "persistence_requests",
    "persistence_latency",
    "persistence_errors",
    "persistence_errors_condition_failed",
    "persistence_errors_shard_ownership_lost",
    "task_requests",
    "task_latency",
    "task_latency_queue",
    "task_attempt",
    "workflow_success",
    "workflow_failed",
    "workflow_timeout",
    "workflow_cancel",
    "workflow_terminate",
    "workflow_continued_as_new",
    "schedule_to_start_latency",
    "history_size",
    "history_count",
]


def _run(scenario, **kwargs) -> tuple[Scrape, ServerMetrics]:  # type: ignore[no-untyped-def]
    metrics = ServerMetrics(MetricsRegistry(tags={"type": "frontend", "cluster": "active"}))

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(metrics=metrics, **kwargs)
        try:
            await asyncio.wait_for(scenario(env), 60)
        finally:
            await env.shutdown()

    asyncio.run(main())
    return scrape_registry(metrics.registry), metrics


async def _outcomes(env: WorkflowEnvironment) -> None:
    # A worker that does not cache runs, so activity tasks go through polls (and matching).
    async with Worker(env.client, task_queue="obs", workflows=WORKFLOWS, activities=ACTIVITIES):
        await run_all(env.client, "obs")


@pytest.fixture(scope="module")
def outcomes() -> Scrape:
    return _run(_outcomes)[0]


def test_every_anchor_family_is_exported_with_the_configured_tags(outcomes: Scrape) -> None:
    assert not [f for f in ANCHOR_FAMILIES if f not in outcomes.families]
    for name, samples in outcomes.samples.items():
        for labels, _ in samples:
            assert labels.get("type") == "frontend" and labels.get("cluster") == "active", (name, labels)
    # Counters keep the anchors' names: no _total suffix.
    assert "service_requests" in outcomes.samples and "service_requests_total" not in outcomes.samples
    assert outcomes.family_types["service_latency"] == "histogram"


def test_each_outcome_moves_its_workflow_counter(outcomes: Scrape) -> None:
    v = outcomes.value
    assert v("workflow_success", namespace="default", task_queue="obs") == 3  # Hello, Flaky, 2nd run
    assert v("workflow_continued_as_new", namespace="default", task_queue="obs") == 1
    assert v("workflow_failed", namespace="default") == 1
    assert v("workflow_timeout", namespace="default") == 1
    assert v("workflow_cancel", namespace="default") == 1
    assert v("workflow_terminate", namespace="default") == 1
    assert v("history_count_count", namespace="default") == 8
    assert v("history_size_sum", namespace="default") > 0


def test_requests_latency_and_operations_are_labelled(outcomes: Scrape) -> None:
    v = outcomes.value
    assert v("service_requests", operation="StartWorkflowExecutionAndWait", namespace="default") >= 4
    assert v("service_requests", operation="PollWorkflowTaskQueue", namespace="default") > 0
    assert v("service_latency_count", operation="RespondWorkflowTaskCompleted", namespace="default") > 0
    # Task tokens name their namespace too.
    assert v("service_requests", operation="RespondActivityTaskFailed", namespace="default") == 1
    assert outcomes.label_names("service_latency_bucket") >= {"operation", "namespace", "le", "type"}


def test_persistence_and_task_metrics_are_present(outcomes: Scrape) -> None:
    v = outcomes.value
    assert v("persistence_requests", operation="CreateWorkflowExecution") >= 7  # + one by continue-as-new
    assert v("persistence_requests", operation="UpdateWorkflowExecution") > 0
    assert v("persistence_latency_count", operation="GetHistoryTasks") > 0
    for category in ("transfer", "timer", "visibility"):
        assert v("task_requests", task_category=category, namespace="default") > 0, category
        assert v("task_latency_queue_count", task_category=category) > 0, category
    for category in ("timer", "visibility"):  # transfer: only tasks run by a handler (cross-workflow)
        assert v("task_latency_count", task_category=category) > 0, category
    assert v("task_requests", task_type="TransferWorkflowTask") > 0
    assert v("task_requests", task_type="TimerWorkflowRunTimeout") == 1
    assert v("schedule_to_start_latency_count", task_type="workflow", task_queue="obs") > 0
    assert v("schedule_to_start_latency_count", task_type="activity", task_queue="obs") > 0


def test_refusals_count_as_service_and_persistence_errors() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        client = env.client
        await client.start_workflow(Sleeper.run, 30.0, id="dup", task_queue="nobody")
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(Sleeper.run, 30.0, id="dup", task_queue="nobody")
        with pytest.raises(RPCError):  # an unknown search attribute is refused before writing
            await client.start_workflow(
                Sleeper.run, 1.0, id="bad", task_queue="nobody", search_attributes={"NoSuchField": ["x"]}
            )
        with pytest.raises(Exception):  # noqa: B017 - the namespace does not exist
            await Client(client.service, namespace="nope").start_workflow(
                Hello.run, "x", id="x", task_queue="nobody"
            )

    s, _ = _run(scenario)
    v = s.value
    assert v("service_errors_execution_already_started", operation="StartWorkflowExecution") == 1
    assert v("service_errors_invalid_argument", operation="StartWorkflowExecution", namespace="default") == 1
    # An unknown namespace is labelled _unknown_, never by the name the caller sent.
    assert v("service_errors_entity_not_found", namespace="_unknown_") == 1
    assert not [lab for lab, _ in s.samples["service_requests"] if lab["namespace"] == "nope"]
    assert v("service_errors", operation="StartWorkflowExecution") == 3


def test_store_failures_count_as_persistence_errors_by_kind() -> None:
    class Executions:
        async def update_workflow_execution(self, request: object) -> None:
            raise ConditionFailedError("lost the race")

        async def get_workflow_execution(self, *args: object) -> None:
            raise StoreUnavailableError("down")

    class Stores:
        shards = history = task_queues = namespaces = membership = object()
        executions = Executions()
        stats = "the backend's own attribute"

        async def close(self) -> None:
            pass

    metrics = ServerMetrics(MetricsRegistry())
    stores = metered_stores(Stores(), metrics)
    assert stores.stats == "the backend's own attribute"

    async def main() -> None:
        with pytest.raises(ConditionFailedError):
            await stores.executions.update_workflow_execution(None)
        with pytest.raises(StoreUnavailableError):
            await stores.executions.get_workflow_execution("ns", "w", "r")

    asyncio.run(main())
    s = scrape_registry(metrics.registry)
    assert s.value("persistence_requests", operation="UpdateWorkflowExecution") == 1
    assert s.value("persistence_errors_condition_failed", operation="UpdateWorkflowExecution") == 1
    assert s.value("persistence_errors_unavailable", operation="GetWorkflowExecution") == 1
    assert s.value("persistence_errors") == 2


def test_undecodable_grpc_requests_count_as_invalid_argument() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        server = RpcServer(env.host.frontend, metrics=env.host.metrics)
        port = await server.start("127.0.0.1", 0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_unary("/cadenza.api.v1.WorkflowService/StartWorkflowExecution")
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await call(b"not avro at all")
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(0)

    s, _ = _run(scenario, visibility=False)
    assert s.value("service_errors_invalid_argument", operation="StartWorkflowExecution") == 1


def test_disabled_metrics_leave_the_engine_untouched() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        host = env.host
        assert not host.metrics.enabled
        assert not getattr(host.frontend, "call_observers", ())  # no observer installed
        assert host.history.metrics is None and host.matching.metrics is None
        assert type(host.stores).__name__ == "SqliteStores"

    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        try:
            await scenario(env)
        finally:
            await env.shutdown()

    asyncio.run(main())
