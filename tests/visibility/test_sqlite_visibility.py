"""The visibility contract and query corpus on the embedded SQLite store (a file per test class)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.visibility.sqlite_store import SqliteVisibilityStore
from cadenza.visibility.store import VisibilityStore

from .contract import VisibilityContract, _record, run


class TestSqliteVisibility(VisibilityContract):
    async def make_store(self, request: pytest.FixtureRequest) -> VisibilityStore:
        tmp: Path = request.getfixturevalue("tmp_path_factory").mktemp("visibility")
        return await SqliteVisibilityStore.open(tmp / "visibility.db")

    async def reopen(self, store: VisibilityStore) -> VisibilityStore:
        assert isinstance(store, SqliteVisibilityStore)
        return await SqliteVisibilityStore.open(store.path)


def test_in_memory_store_works_too() -> None:
    async def scenario() -> int:
        store = await SqliteVisibilityStore.open(":memory:")
        try:
            await store.upsert(_record("m", 1))
            return await store.count("ns-video", "WorkflowType = 'Transcode'")
        finally:
            await store.close()

    assert run(scenario()) == 1
