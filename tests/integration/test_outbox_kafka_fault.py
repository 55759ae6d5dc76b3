"""Kafka killed (SIGKILL) and restarted in the middle of a load run while the engine's outbox publishes
visibility records to it: the outbox backs up (its tasks stay unacknowledged) and drains once the
broker is back, so every workflow ends up indexed with its latest state, each once."""

from __future__ import annotations

import asyncio
import time

import pytest
from services.restart_in_place import kill_service, restart_service

from cadenza import workflow
from cadenza.engine.bus.kafka import KafkaBus
from cadenza.engine.host import Host
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.ops.devservices.manager import ServiceManager
from cadenza.ops.devservices.services import probe_kafka
from cadenza.sdk._local import local_service
from cadenza.sdk.client import Client
from cadenza.visibility.pipeline import DEV_SEARCH_ATTRIBUTES
from cadenza.visibility.sqlite_store import SqliteVisibilityStore
from cadenza.worker import Worker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
WORKFLOWS = 240


@workflow.defn
class Tagged:
    @workflow.run
    async def run(self, n: int) -> int:
        workflow.upsert_search_attributes({"CustomIntField": n})
        return n


def test_kafka_killed_and_restarted_under_load_the_outbox_drains_and_nothing_is_lost(
    kafka_bootstrap: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    manager = ServiceManager(progress=lambda _: None)

    async def main() -> None:
        store = await SqliteVisibilityStore.open(str(tmp_path / "visibility.db"))
        await store.add_search_attributes(DEV_SEARCH_ATTRIBUTES)
        bus = KafkaBus(kafka_bootstrap)
        host = await Host.start(
            open_sqlite_stores(str(tmp_path / "cadenza.db")), visibility_store=store, bus=bus
        )
        client = Client(local_service(host.frontend))
        loop = asyncio.get_running_loop()
        try:
            async with Worker(client, task_queue="fault", workflows=[Tagged]):
                sem = asyncio.Semaphore(20)
                completed = 0

                async def one(i: int) -> None:
                    nonlocal completed
                    async with sem:
                        await client.execute_workflow(
                            Tagged.run, i, id=f"kafka-fault-{i}", task_queue="fault"
                        )
                        completed += 1

                load = [asyncio.create_task(one(i)) for i in range(WORKFLOWS)]
                while completed < WORKFLOWS // 3:
                    await asyncio.sleep(0.01)
                old = await loop.run_in_executor(None, kill_service, manager, "kafka")
                at_kill = completed
                await asyncio.sleep(2)  # the load goes on while the store is down
                await loop.run_in_executor(
                    None,
                    lambda: restart_service(
                        manager,
                        "kafka",
                        old,
                        lambda: probe_kafka(kafka_bootstrap, 2.0),
                    ),
                )
                await asyncio.gather(*load)
                new = manager.record("kafka")
                assert new is not None and new.pid != old.pid, "Kafka was not restarted"
                assert at_kill < WORKFLOWS, "the load finished before the kill: nothing was tested"
            # The restarted broker reloads its coordinators and the idempotent producer re-acquires
            # its id before the backlog moves; on a loaded 2-core machine that alone can take a minute.
            deadline = time.monotonic() + 240
            counts: dict[str, int] = {}
            while time.monotonic() < deadline:
                try:
                    counts = await store.count_group_by_status(
                        host.frontend.namespaces._by_name["default"].id, ""
                    )
                except Exception:
                    counts = {}
                if counts == {"Completed": WORKFLOWS}:
                    break
                await asyncio.sleep(0.5)
            sink = host.visibility_sink
            assert counts == {"Completed": WORKFLOWS}, (
                f"indexed {counts}; records still unacknowledged by Kafka: "
                f"{len(getattr(getattr(sink, '_producer', None), '_in_flight', ()))}"
            )
            ns_id = host.frontend.namespaces._by_name["default"].id
            seen: list[str] = []
            token = None
            while True:
                records, token = await store.list(ns_id, "CustomIntField >= 0", 100, token)
                seen += [r.workflow_id for r in records]
                if not token:
                    break
            assert sorted(seen) == sorted(f"kafka-fault-{i}" for i in range(WORKFLOWS))  # each once
        finally:
            await host.stop()
            await bus.close()
            await store.close()

    asyncio.run(main())
