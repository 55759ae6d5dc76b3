"""Visibility through the production backends: the server's outbox publishes to real Kafka, the
indexer consumes it into real Elasticsearch, and the frontend lists from there."""

from __future__ import annotations

import asyncio
import time
import uuid

from cadenza import workflow
from cadenza.engine.bus.kafka import KafkaBus
from cadenza.engine.host import Host
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.sdk._local import local_service
from cadenza.sdk.client import Client
from cadenza.visibility.es_store import ElasticsearchVisibilityStore
from cadenza.visibility.pipeline import DEV_SEARCH_ATTRIBUTES
from cadenza.worker import Worker


@workflow.defn
class Ingest:
    @workflow.run
    async def run(self, customer: str) -> str:
        workflow.upsert_search_attributes({"CustomKeywordField": customer})
        await asyncio.sleep(0.01)
        return customer


def test_workflows_are_searchable_in_elasticsearch_via_kafka(
    kafka_bootstrap: str, elasticsearch_url: str
) -> None:
    index = f"cadenza_visibility_it_{uuid.uuid4().hex[:8]}"

    async def main() -> None:
        store = await ElasticsearchVisibilityStore.open(elasticsearch_url, index=index)
        await store.add_search_attributes(DEV_SEARCH_ATTRIBUTES)
        bus = KafkaBus(kafka_bootstrap)
        host = await Host.start(open_sqlite_stores(":memory:"), visibility_store=store, bus=bus)
        client = Client(local_service(host.frontend))
        try:
            async with Worker(client, task_queue="ingest", workflows=[Ingest]):
                started = time.monotonic()
                for c in ("acme", "globex", "initech"):
                    await client.execute_workflow(Ingest.run, c, id=f"ingest-{c}", task_queue="ingest")
                closed_at = time.monotonic()
                found: list[str] = []
                while time.monotonic() - closed_at < 30:
                    await store.refresh()
                    resp = await host.frontend.list_workflow_executions(
                        "default",
                        "ExecutionStatus = 'Completed' AND CustomKeywordField IN ('acme', 'initech')",
                        10,
                    )
                    found = sorted(r.workflow_id for r in resp.executions)
                    if found == ["ingest-acme", "ingest-initech"]:
                        break
                    await asyncio.sleep(0.1)
                assert found == ["ingest-acme", "ingest-initech"]
                counts = await host.frontend.count_workflow_executions("default", "", group_by_status=True)
                assert counts.groups == {"Completed": 3}
                lag = time.monotonic() - closed_at
                print(f"visible {lag:.2f} s after close ({closed_at - started:.2f} s run)")
        finally:
            await host.stop()
            await bus.close()
            await store.drop()
            await store.close()

    asyncio.run(main())
