"""The SQLite persistence backend (stdlib ``sqlite3``), cadenza's embedded default."""

from .db import GroupStats, UnsupportedSchemaError
from .stores import SqliteStores, open_sqlite_stores

__all__ = ["GroupStats", "SqliteStores", "UnsupportedSchemaError", "open_sqlite_stores"]
