"""``metrics.prometheus.listenAddress`` and ``tags`` from the server config, and the dev server's
``--metrics-port``."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from cadenza.client import Client
from cadenza.ops.config import ConfigError, load_config, settings_from_config
from cadenza.ops.devserver import ServerProcess
from cadenza.worker import Worker

from .scrape import scrape_url
from .workflows import ACTIVITIES, WORKFLOWS, Hello

BASE = """
persistence:
  numHistoryShards: 2
  defaultStore: sqlite-default
  datastores:
    sqlite-default:
      sqlite: {databaseName: ":memory:"}
services:
  frontend:
    rpc: {grpcPort: 0, bindOnIP: 127.0.0.1}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(BASE + extra)
    return path


def test_global_metrics_block_serves_tagged_series(tmp_path: Path) -> None:
    port = _free_port()
    path = _write(
        tmp_path,
        f"""
global:
  metrics:
    tags: {{type: frontend, dc: dc1}}
    prometheus:
      timerType: histogram
      listenAddress: "127.0.0.1:{port}"
""",
    )
    settings = settings_from_config(load_config(path), path)
    assert settings.metrics is not None and settings.metrics.listen_address == f"127.0.0.1:{port}"

    async def main() -> None:
        server = ServerProcess(settings)
        await server.start()
        try:
            assert server.metrics_port == port
            client = await Client.connect(f"127.0.0.1:{server.port}")
            async with Worker(client, task_queue="cfg", workflows=WORKFLOWS, activities=ACTIVITIES):
                await client.execute_workflow(Hello.run, "x", id="cfg-1", task_queue="cfg")
            s = await asyncio.to_thread(scrape_url, f"http://127.0.0.1:{port}/metrics")
            await client.service.close()  # type: ignore[attr-defined]
        finally:
            await server.stop()
        assert (
            s.value("workflow_success", namespace="default", task_queue="cfg", type="frontend", dc="dc1") == 1
        )
        assert s.value("service_requests", operation="StartWorkflowExecutionAndWait") == 1
        # Every series carries the configured tags, the bus-backed gauges included.
        assert all(lab.get("dc") == "dc1" for samples in s.samples.values() for lab, _ in samples)
        assert "visibility_indexer_lag" in s.samples and "replication_backlog" in s.samples

    asyncio.run(main())


def test_per_service_metrics_block_as_cadence_writes_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "").with_name("cadence.yaml")
    path.write_text(
        BASE.replace(
            "    rpc: {grpcPort: 0, bindOnIP: 127.0.0.1}",
            "    rpc: {grpcPort: 0, bindOnIP: 127.0.0.1}\n"
            "    metrics:\n"
            "      tags: {type: frontend}\n"
            "      prometheus: {timerType: histogram, listenAddress: '127.0.0.1:9099'}",
        )
    )
    settings = settings_from_config(load_config(path), path)
    assert settings.metrics is not None
    assert settings.metrics.listen_address == "127.0.0.1:9099"
    assert dict(settings.metrics.tags) == {"type": "frontend"}


def test_no_metrics_block_exports_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    assert settings_from_config(load_config(path), path).metrics is None


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            "prometheus: {timerType: summary, listenAddress: '127.0.0.1:1'}",
            "global.metrics.prometheus.timerType",
        ),
        ("prometheus: {listenAddress: 'nowhere'}", "global.metrics.prometheus.listenAddress"),
        ("prometheus: {listenAddres: '127.0.0.1:1'}", "global.metrics.prometheus.listenAddres"),
        ("tags: {type: frontend}\n    prefix: cadenza", "global.metrics.prefix"),
    ],
)
def test_bad_metrics_config_names_the_key_and_file(tmp_path: Path, block: str, message: str) -> None:
    path = _write(tmp_path, f"global:\n  metrics:\n    {block}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and message in str(e.value)
