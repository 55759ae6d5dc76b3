"""SDK worker metrics through ``Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(...)))``."""

from __future__ import annotations

import asyncio

from cadenza.client import Client
from cadenza.runtime import PrometheusConfig, Runtime, TelemetryConfig
from cadenza.sdk._metrics import MeteredService
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .scrape import Scrape, scrape_url
from .workflows import ACTIVITIES, WORKFLOWS, Hello, run_all


def test_a_worker_records_requests_tasks_activities_and_its_cache() -> None:
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address="127.0.0.1:0", durations_as_seconds=True),
            global_tags={"region": "eu"},
        )
    )

    async def main() -> Scrape:
        env = await WorkflowEnvironment.start_local(visibility=False)
        try:
            client = await Client.connect(env.host, runtime=runtime)
            assert [type(o).__name__ for o in client.service.observers] == ["SdkCallMetrics"]  # type: ignore[attr-defined]
            async with Worker(client, task_queue="sdk", workflows=WORKFLOWS, activities=ACTIVITIES):
                await run_all(client, "sdk")
                return await asyncio.to_thread(scrape_url, f"http://127.0.0.1:{runtime.metrics_port}/metrics")
        finally:
            await env.shutdown()

    try:
        s = asyncio.run(main())
    finally:
        runtime.close()
    v = s.value
    assert v("cadenza_workflow_completed", task_queue="sdk", workflow_type="Hello") == 1
    assert v("cadenza_workflow_failed", workflow_type="Failing") == 1
    assert v("cadenza_workflow_canceled", workflow_type="Sleeper") == 1
    assert v("cadenza_workflow_continue_as_new", workflow_type="ContinueOnce") == 1
    assert v("cadenza_activity_execution_latency_count", activity_type="flaky") == 2
    assert v("cadenza_activity_execution_failed", activity_type="flaky") == 1
    assert v("cadenza_workflow_task_queue_poll_succeed", poller_type="sticky_workflow_task") > 0
    assert v("cadenza_sticky_cache_hit", task_queue="sdk") > 0
    assert v("cadenza_request", operation="RespondActivityTaskCompleted", namespace="default") >= 2
    assert v("cadenza_long_request", operation="StartWorkflowExecutionAndWait") == 4
    assert v("cadenza_num_pollers", task_queue="sdk", poller_type="activity_task") == 4
    # Seconds asked for: a workflow task takes well under one.
    assert (
        0
        < v("cadenza_workflow_task_execution_latency_sum")
        < v("cadenza_workflow_task_execution_latency_count")
    )
    assert all(
        lab.get("region") == "eu" and lab.get("service_name") == "cadenza-sdk"
        for samples in s.samples.values()
        for lab, _ in samples
    )


def test_the_default_runtime_records_nothing() -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local(visibility=False)
        try:
            client = await Client.connect(env.host)
            assert client.runtime is Runtime.default() and client.runtime.metrics is None
            assert not isinstance(client.service, MeteredService)
            assert not client.service.observers  # type: ignore[attr-defined]
            async with Worker(client, task_queue="plain", workflows=WORKFLOWS, activities=ACTIVITIES):
                assert await client.execute_workflow(Hello.run, "x", id="plain", task_queue="plain")
        finally:
            await env.shutdown()

    asyncio.run(main())
