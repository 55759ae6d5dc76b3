"""The persistence contract, run against the SQLite backend (in memory and on a file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.engine.persistence import Stores, open_sqlite_stores

from .contract import StoreContract


class TestSqliteMemory(StoreContract):
    async def make_stores(self) -> Stores:
        return open_sqlite_stores(":memory:")


class TestSqliteFile(StoreContract):
    @pytest.fixture(autouse=True)
    def _db_path(self, tmp_path: Path) -> None:
        self.db_path = tmp_path / "cadenza.db"

    async def make_stores(self) -> Stores:
        return open_sqlite_stores(self.db_path)
