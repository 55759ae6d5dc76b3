"""Traces in a real Jaeger and metrics in a real Prometheus, both started by `cadenza dev services`.

The video pipeline runs against a dev server subprocess with tracing on (``--otlp-endpoint``), its
client and workers traced by ``TracingInterceptor``; Jaeger's query API must then hold one trace
with the client's start, the server's handling of it, the workflow run and every activity. Then a
dev server with ``--metrics-port`` is scraped by Prometheus and queried through ``/api/v1/query``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from typing import Any

import pytest
from e2e.workflows import (
    ANALYSIS_QUEUE,
    PipelineResult,
    VideoPipeline,
    classify,
    detect_watermark,
    transcode,
    update_media_db,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rpc.devserver import DevServer

from cadenza.client import Client
from cadenza.contrib.opentelemetry import TracingInterceptor
from cadenza.ops.devservices.observability import set_scrape_targets
from cadenza.worker import Worker

# Run alone on a fresh machine, the fixtures build Jaeger and Prometheus first (minutes);
# `scripts/test` builds them before pytest starts.
pytestmark = [pytest.mark.observability, pytest.mark.timeout(2400)]

ACTIVITIES = {"detect_watermark": 1, "classify": 1, "transcode": 12, "update_media_db": 1}


def _get(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(what: str, probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f}s (last answer: {last!r})")


async def _run_pipeline(address: str, tracing: TracingInterceptor, video_id: str) -> str:
    client = await Client.connect(address, interceptors=[tracing])
    async with (
        Worker(
            client, task_queue="video", workflows=[VideoPipeline], activities=[transcode, update_media_db]
        ),
        Worker(client, task_queue=ANALYSIS_QUEUE, activities=[detect_watermark, classify]),
    ):
        workflow_id = f"video-{video_id}"
        result = await client.execute_workflow(
            VideoPipeline.run, video_id, id=workflow_id, task_queue="video"
        )
        assert isinstance(result, PipelineResult) and len(result.renditions) == 12
        return workflow_id


def test_video_pipeline_is_one_trace_in_jaeger(jaeger: Any) -> None:
    service = f"video-test-{uuid.uuid4().hex[:8]}"
    server = DevServer(["--otlp-endpoint", jaeger.otlp_grpc_endpoint]).start()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=jaeger.otlp_grpc_endpoint, insecure=True))
    )
    try:
        tracing = TracingInterceptor(provider.get_tracer("video-test"))
        workflow_id = asyncio.run(_run_pipeline(server.address, tracing, "v-9-wm"))
    finally:
        provider.shutdown()  # flushes the client's and workers' spans
        assert server.stop() == 0  # flushes the server's

    def find_trace() -> dict[str, Any] | None:
        query = urllib.parse.urlencode({"service": service, "operation": "StartWorkflow:VideoPipeline"})
        traces = _get(f"{jaeger.address}/api/traces?{query}&limit=5&lookback=1h")["data"]
        for trace in traces:
            spans = trace["spans"]
            ids = {s["spanID"] for s in spans}
            names = Counter(s["operationName"] for s in spans)
            # Complete once every activity ran, every parent arrived, and the server's batch is in:
            # Jaeger stores the client's and the server's exports in whatever order they arrive.
            server_in = any(
                n.startswith("cadenza.api.v1.WorkflowService/StartWorkflowExecution") for n in names
            )
            if (
                names["RunActivity:transcode"] == 12
                and server_in
                and all(ref["spanID"] in ids for s in spans for ref in s.get("references", []))
            ):
                return dict(trace)
        return None

    trace = _wait_for("one complete trace of the pipeline in Jaeger", find_trace)
    spans = trace["spans"]
    processes = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    names = Counter(s["operationName"] for s in spans)
    services = {(s["operationName"], processes[s["processID"]]) for s in spans}
    assert names["StartWorkflow:VideoPipeline"] == 1
    assert names["RunWorkflow:VideoPipeline"] == 1
    for activity, count in ACTIVITIES.items():
        assert names[f"StartActivity:{activity}"] == count, names
        assert names[f"RunActivity:{activity}"] == count, names
    # The server's span of the start call, continuing the client's context, in the same trace.
    server_start = [
        s
        for s in spans
        if s["operationName"].startswith("cadenza.api.v1.WorkflowService/StartWorkflowExecution")
    ]
    assert server_start, sorted(names)
    assert ("RunWorkflow:VideoPipeline", service) in services
    assert processes[server_start[0]["processID"]] == "cadenza-server"
    by_id = {s["spanID"]: s for s in spans}
    parent = by_id[server_start[0]["references"][0]["spanID"]]
    assert parent["operationName"] == "StartWorkflow:VideoPipeline"
    tags = {t["key"]: t["value"] for t in server_start[0]["tags"]}
    assert tags.get("cadenza.workflow_id") == workflow_id
    # Store calls made while handling the start are its children.
    children = [
        s for s in spans if any(r["spanID"] == server_start[0]["spanID"] for r in s.get("references", []))
    ]
    assert any(c["operationName"].startswith("persistence/") for c in children), [
        c["operationName"] for c in children
    ]


def test_prometheus_scrapes_the_dev_server(prometheus: Any) -> None:
    metrics_port = _free_port()
    server = DevServer(["--metrics-port", str(metrics_port)]).start()
    try:
        set_scrape_targets([f"127.0.0.1:{metrics_port}"])
        client_calls = asyncio.run(_describe_namespace_a_few_times(server.address))

        def query(expr: str) -> list[dict[str, Any]]:
            body = _get(f"{prometheus.address}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
            assert body["status"] == "success", body
            return list(body["data"]["result"])

        up = _wait_for(
            "Prometheus scraping the dev server",
            lambda: [r for r in query('up{job="cadenza"}') if r["value"][1] == "1"],
        )
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{metrics_port}"
        requests = _wait_for(
            "the server's request count in Prometheus",
            lambda: [r for r in query('sum by (operation) (service_requests{job="cadenza"})') if r["metric"]],
        )
        by_operation = {r["metric"]["operation"]: float(r["value"][1]) for r in requests}
        assert any(count >= client_calls for count in by_operation.values()), by_operation
    finally:
        set_scrape_targets([])
        assert server.stop() == 0


async def _describe_namespace_a_few_times(address: str) -> int:
    client = await Client.connect(address)
    calls = 5
    for _ in range(calls):
        await client.service.describe_namespace("default")
    return calls
