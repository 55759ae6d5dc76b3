"""The visibility indexer applies one poll's messages as one write, the newest record of each run.
A run's close record and its deletion (retention) can share a batch: the deletion must win, in
whichever order, or the deleted run would be back in every list for good. On the real SQLite
visibility store."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from cadenza.engine.bus import EmbeddedBus
from cadenza.engine.bus.messages import VisibilityMessage, VisibilityMessageType, encode_visibility
from cadenza.engine.bus.protocol import Message
from cadenza.visibility.pipeline import VisibilityIndexer
from cadenza.visibility.sqlite_store import SqliteVisibilityStore

NS = "ns-1"
_offsets = itertools.count()


def _message(run_id: str, task_id: int, *, deleted: bool = False) -> Message:
    m = VisibilityMessage(
        namespace_id=NS,
        workflow_id=f"wf-{run_id}",
        run_id=run_id,
        task_id=task_id,
        message_type=VisibilityMessageType.DELETE if deleted else VisibilityMessageType.UPSERT,
        workflow_type="Hello",
        start_time=1_000_000,
        execution_time=1_000_000,
        close_time=None if deleted else 2_000_000,
        status=0 if deleted else 2,
    )
    return Message("visibility", 0, next(_offsets), m.key, encode_visibility(m))


async def _listed(store: SqliteVisibilityStore) -> list[str]:
    records, _ = await store.list(NS)
    return sorted(r.run_id for r in records)


@pytest.mark.parametrize(
    ("batches", "left"),
    [
        # The close record and the deletion in one batch, in the order they were published.
        ([[("a", 10, False), ("a", 20, True)]], []),
        # ... and the other way round: the deletion is still the newer one.
        ([[("a", 20, True), ("a", 10, False)]], []),
        # A record newer than a deletion in the same batch stays (a later run's own record).
        ([[("a", 20, True), ("a", 30, False)]], ["a"]),
        # Across batches, as before.
        ([[("a", 10, False)], [("a", 20, True)]], []),
        # Other runs in the batch are indexed as usual.
        ([[("a", 10, False), ("b", 11, False), ("a", 20, True)]], ["b"]),
    ],
)
def test_a_deletion_in_the_batch_of_the_close_record_wins(
    batches: list[list[tuple[str, int, bool]]], left: list[str]
) -> None:
    async def main() -> None:
        store = await SqliteVisibilityStore.open(":memory:")
        bus = EmbeddedBus(":memory:")
        try:
            indexer = VisibilityIndexer(bus, store)
            for batch in batches:
                await indexer._index_batch([_message(r, t, deleted=d) for r, t, d in batch])
            assert await _listed(store) == left
        finally:
            await bus.close()
            await store.close()

    asyncio.run(main())
