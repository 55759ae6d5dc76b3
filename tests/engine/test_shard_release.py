"""A stopping host releases its shards: the row keeps its range_id and ack levels and names no owner,
the next owner's acquire moves the range on, and a release never overwrites a newer owner's row.
On every store backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from persistence.cassandra.support import Keyspace, cassandra_keyspace  # noqa: F401  (fixture)
from persistence.contract_base import new_shard_id

from cadenza.engine.clock import SystemClock
from cadenza.engine.history.shard import ShardContext
from cadenza.engine.persistence import open_sqlite_stores
from cadenza.engine.persistence.protocols import Stores


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Stores]]:
    if request.param == "sqlite":
        path = tmp_path / "cadenza.db"
        yield lambda: open_sqlite_stores(path)
    else:
        ks: Keyspace = request.getfixturevalue("cassandra_keyspace")
        yield ks.stores


def _shard(stores: Stores, shard_id: int, owner: str) -> ShardContext:
    return ShardContext(shard_id, stores, SystemClock(), owner, on_new_tasks=lambda s, t: None)


def test_a_released_shard_names_no_owner_and_the_next_owner_moves_the_range_on(
    backend: Callable[[], Stores],
) -> None:
    async def main() -> None:
        stores = backend()
        shard_id = new_shard_id()
        leaving = _shard(stores, shard_id, "host-a")
        await leaving.acquire()
        await leaving.save_ack_levels({"transfer": 42})
        range_id = leaving.range_id

        await leaving.release()
        assert leaving.lost  # it writes nothing more to the shard
        row = await stores.shards.get_shard(shard_id)
        assert (row.owner, row.range_id, row.ack_levels["transfer"]) == ("", range_id, 42)

        coming = _shard(stores, shard_id, "host-b")
        await coming.acquire()
        assert coming.range_id == range_id + 1
        assert coming.ack_levels["transfer"] == 42  # it reads its tasks from where the last owner was
        await stores.close()

    asyncio.run(main())


def test_a_release_after_another_host_took_the_shard_leaves_its_row_alone(
    backend: Callable[[], Stores],
) -> None:
    async def main() -> None:
        stores = backend()
        shard_id = new_shard_id()
        old = _shard(stores, shard_id, "host-a")
        await old.acquire()
        new = _shard(stores, shard_id, "host-b")
        await new.acquire()

        await old.release()
        row = await stores.shards.get_shard(shard_id)
        assert (row.owner, row.range_id) == ("host-b", new.range_id)
        assert old.lost
        await stores.close()

    asyncio.run(main())
