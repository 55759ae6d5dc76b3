"""The shipped Grafana dashboards ask only for series the code exports.

A dev server runs as a real subprocess with ``--metrics-port``, a worker with a metrics runtime
runs one workflow of each outcome against it over gRPC, both endpoints are scraped, and every
metric each panel's PromQL names must be exported, with the labels the query uses. A few series
need conditions a short test cannot make (a second cluster refusing writes, a rate limit, a poll
that waits out its minute): for those the metric family must still be exported (so a misspelt
name fails), but no sample is required.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from rpc.devserver import cadenza_argv, env

import cadenza.ops
from cadenza.client import Client
from cadenza.runtime import PrometheusConfig, Runtime, TelemetryConfig
from cadenza.worker import Worker

from .promql import dashboard_queries, selectors
from .scrape import Scrape, scrape_url
from .workflows import ACTIVITIES, WORKFLOWS, Hello, make_refusals, run_all

DASHBOARDS = Path(cadenza.ops.__file__).with_name("dashboards")
_READY = re.compile(r"serving on \S+:(\d+) .*metrics: (\d+);")

NEEDS_CONDITIONS = {
    "service_errors_resource_exhausted": "a namespace over its rate limit",
    "service_errors_namespace_not_active": "a standby cluster refusing a write",
    "cadenza_workflow_task_queue_poll_empty": "a poll that waits out its minute",
    "cadenza_activity_poll_no_task": "a poll that waits out its minute",
    "cadenza_long_request_failure": "a long poll that fails",
    "cadenza_request_failure": "a request that fails",
    "cadenza_activity_execution_cancelled": "an activity cancelled while it runs",
    "persistence_errors_condition_failed": "two writers racing on one run",
    "persistence_errors_shard_ownership_lost": "a shard moving to another host",
    "persistence_errors": "a store call that fails",
    "task_errors": "a task handler that fails",
}


def _base(name: str, scrape: Scrape) -> str:
    """The family of a sample name (``x_bucket`` -> ``x``)."""
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name[: -len(suffix)] in scrape.families:
            return name[: -len(suffix)]
    return name


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scrape, Scrape]]:
    tmp = tmp_path_factory.mktemp("dash")
    # --cluster active: replication to the other two dev clusters is set up (they need not run),
    # so the per-source replication series exist.
    proc = subprocess.Popen(
        [
            *cadenza_argv(),
            "server",
            "start-dev",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--cluster",
            "active",
            "--replication-log",
            str(tmp / "replication.bus"),
        ],
        stdout=subprocess.PIPE,
        stderr=(tmp / "server.log").open("w"),
        text=True,
        env=env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = _READY.search(line)
        assert m, f"dev server did not start: {line!r}\n{(tmp / 'server.log').read_text()[-3000:]}"
        port, metrics_port = int(m.group(1)), int(m.group(2))
        yield asyncio.run(_exercise(port, metrics_port))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _exercise(port: int, metrics_port: int) -> tuple[Scrape, Scrape]:
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address="127.0.0.1:0")))
    client = await Client.connect(f"127.0.0.1:{port}", runtime=runtime)
    try:
        async with Worker(client, task_queue="dash", workflows=WORKFLOWS, activities=ACTIVITIES):
            await run_all(client, "dash")
            await make_refusals(client, "dash")
            # A workflow type nobody registered: its task fails on the worker (and is retried).
            stray = await client.start_workflow("Unregistered", id="m-stray", task_queue="dash")
            await asyncio.sleep(0.5)
            await stray.terminate()
        # A worker without a cache replays each run's history on every task.
        async with Worker(
            client,
            task_queue="dash-replay",
            workflows=WORKFLOWS,
            activities=ACTIVITIES,
            max_cached_workflows=0,
        ) as worker:
            await client.execute_workflow(
                Hello.run,
                "r",
                id="m-replay",
                task_queue="dash-replay",
                execution_timeout=timedelta(seconds=30),
            )
            # Scraped while the worker runs: its pollers and slots are gauges of running workers.
            sdk = await asyncio.to_thread(scrape_url, f"http://127.0.0.1:{runtime.metrics_port}/metrics")
            del worker
        await asyncio.sleep(0.3)
        server = await asyncio.to_thread(scrape_url, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        await client.service.close()  # type: ignore[attr-defined]
        runtime.close()
    return server, sdk


@pytest.mark.parametrize(("dashboard", "which"), [("cadenza-server.json", 0), ("cadenza-sdk.json", 1)])
def test_every_panel_query_names_an_exported_series(
    scrapes: tuple[Scrape, Scrape], dashboard: str, which: int
) -> None:
    scrape = scrapes[which]
    board = json.loads((DASHBOARDS / dashboard).read_text())
    queries = dashboard_queries(board)
    assert len(queries) >= 15
    problems = []
    for title, expr in queries:
        for name, labels in selectors(expr):
            family = _base(name, scrape)
            if family not in scrape.families:
                problems.append(f"{title}: {name} is not exported")
                continue
            if not scrape.samples.get(name):
                if family not in NEEDS_CONDITIONS:
                    problems.append(f"{title}: {name} has no series after the run")
                continue
            missing = labels - scrape.label_names(name)
            if missing:
                problems.append(f"{title}: {name} has no label {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_the_workflows_moved_the_server_and_worker_counters(scrapes: tuple[Scrape, Scrape]) -> None:
    server, sdk = scrapes
    assert server.value("workflow_success", task_queue="dash") == 4  # with the short duplicate
    assert server.value("service_errors_execution_already_started", operation="StartWorkflowExecution") == 1
    assert server.value("service_errors_entity_not_found", namespace="_unknown_") == 1
    assert server.value("service_errors_invalid_argument", namespace="default") == 1
    assert server.value("workflow_failed", task_queue="dash") == 1
    assert server.value("replication_lag_seconds", source_cluster="standby") == 0
    assert server.value("replication_dlq_size", source_cluster="other") == 0
    assert sdk.value("cadenza_workflow_completed", task_queue="dash-replay") == 1
    assert sdk.value("cadenza_workflow_task_replay_latency_count", task_queue="dash-replay") >= 1
    assert sdk.value("cadenza_sticky_cache_hit", task_queue="dash") > 0
    assert sdk.value("cadenza_sticky_cache_miss", task_queue="dash-replay") >= 1
    assert sdk.value("cadenza_workflow_task_execution_failed", failure_reason="WORKFLOW_TYPE_NOT_FOUND") >= 1
    assert sdk.value("cadenza_activity_execution_failed", activity_type="flaky") == 1
    assert sdk.value("cadenza_num_pollers", task_queue="dash-replay", poller_type="workflow_task") == 4
    # As temporalio exports them: counters without _total, durations in milliseconds.
    assert "cadenza_request" in sdk.samples and "cadenza_request_total" not in sdk.samples
