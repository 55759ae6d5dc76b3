"""The persistence contract, run unchanged against the real Cassandra of `cadenza dev services`.

One keyspace per test session (created with ``setup_schema``, replication factor 1, consistency
ONE/SERIAL); every contract test uses random shard ids and uuids, so they share it safely.
"""

from __future__ import annotations

import pytest

from cadenza.engine.persistence import Stores

from .cassandra.support import Keyspace, cassandra_keyspace  # noqa: F401  (fixture)
from .contract import StoreContract

pytestmark = pytest.mark.cassandra


class TestCassandra(StoreContract):
    @pytest.fixture(autouse=True)
    def _keyspace(self, cassandra_keyspace: Keyspace) -> None:  # noqa: F811
        self.keyspace = cassandra_keyspace

    async def make_stores(self) -> Stores:
        return self.keyspace.stores()
