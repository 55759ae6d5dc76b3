"""`cadenza server start --config FILE` on the production backends, as an operator runs it: workflows
in Cassandra, visibility through Kafka into Elasticsearch; and the clear error when Cassandra is
unreachable."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from cadenza import workflow
from cadenza.client import Client
from cadenza.engine.persistence.cassandra.schema import setup_schema
from cadenza.engine.persistence.cassandra.session import CassandraSession
from cadenza.worker import Worker

CONFIG = """
persistence:
  numHistoryShards: 4
  defaultStore: cass
  visibilityStore: es
  datastores:
    cass:
      cassandra:
        hosts: "{cass_host}"
        port: {cass_port}
        keyspace: {keyspace}
        consistency: ONE
        serialConsistency: SERIAL
    es:
      elasticsearch:
        url: {es_url}
        indices:
          visibility: {index}
kafka:
  clusters:
    active:
      brokers: ["{kafka}"]
clusterMetadata:
  currentClusterName: active
services:
  frontend:
    rpc:
      grpcPort: {port}
      bindOnIP: 127.0.0.1
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@workflow.defn
class Order:
    @workflow.run
    async def run(self, customer: str) -> str:
        workflow.upsert_search_attributes({"CustomKeywordField": customer})
        return f"shipped to {customer}"


def _start_server(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cadenza", "server", "start", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def test_server_from_config_runs_on_cassandra_kafka_and_elasticsearch(
    tmp_path: Path, cassandra_contact: tuple[str, int], kafka_bootstrap: str, elasticsearch_url: str
) -> None:
    keyspace = f"cadenza_cfg_{uuid.uuid4().hex[:8]}"
    db = CassandraSession.connect(
        [cassandra_contact[0]], cassandra_contact[1], keyspace, consistency="ONE", serial_consistency="SERIAL"
    )
    setup_schema(db, keyspace)
    db.close_blocking()
    port = _free_port()
    config = tmp_path / "server.yaml"
    config.write_text(
        CONFIG.format(
            cass_host=cassandra_contact[0],
            cass_port=cassandra_contact[1],
            keyspace=keyspace,
            es_url=elasticsearch_url,
            index=f"cadenza_vis_{keyspace}",
            kafka=kafka_bootstrap,
            port=port,
        )
    )
    server = _start_server(config)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "serving on" in line, line + (server.stderr.read() if server.stderr else "")

        async def main() -> None:
            client = await Client.connect(f"127.0.0.1:{port}")
            # As an operator would (`cadenza admin cluster add-search-attributes`).
            await client.service.add_search_attributes({"CustomKeywordField": "Keyword"})  # type: ignore[attr-defined]
            async with Worker(client, task_queue="orders", workflows=[Order]):
                assert await client.execute_workflow(
                    Order.run, "acme", id="order-1", task_queue="orders"
                ) == ("shipped to acme")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                page = await client.service.list_workflow_executions(  # type: ignore[attr-defined]
                    "default", "CustomKeywordField = 'acme' AND ExecutionStatus = 'Completed'", 10
                )
                if [e.workflow_id for e in page.executions] == ["order-1"]:
                    return
                await asyncio.sleep(0.2)
            raise AssertionError("order-1 never became searchable")

        asyncio.run(main())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert server.returncode == 0


def test_server_with_cassandra_unreachable_exits_with_one_error_naming_the_hosts(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        CONFIG.format(
            cass_host="127.0.0.1",
            cass_port=_free_port(),
            keyspace="nowhere",
            es_url="http://127.0.0.1:1",
            index="x",
            kafka="127.0.0.1:1",
            port=_free_port(),
        )
    )
    server = _start_server(config)
    _, err = server.communicate(timeout=60)
    assert server.returncode == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:") and "127.0.0.1" in lines[-1], err[-2000:]
    assert "Traceback" not in err
