"""The protocol every visibility store implements, and the query handling they share.

Stores: ``sqlite_store.SqliteVisibilityStore`` (the embedded default) and
``es_store.ElasticsearchVisibilityStore``. Both parse queries with the same parser against the same
registry, page with the same tokens, and pass the same query corpus (``tests/visibility``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

from cadenza.visibility.errors import QueryError, SearchAttributeError
from cadenza.visibility.query import Query, parse_query
from cadenza.visibility.record import VisibilityRecord
from cadenza.visibility.search_attributes import SearchAttributeRegistry, SearchAttributeType

Page = tuple[list[VisibilityRecord], bytes | None]
"""A page of records and the token of the next page (None after the last)."""

MAX_PAGE_SIZE = 10_000


class VisibilityStore(Protocol):
    """Where visibility records are indexed and searched."""

    async def upsert(self, record: VisibilityRecord) -> None:
        """Writes ``record`` unless the stored one has a ``task_id`` at least as high.

        Raises :class:`~cadenza.visibility.errors.SearchAttributeError`, writing nothing, when a custom
        attribute is unknown or has a value of the wrong type.
        """
        ...

    async def upsert_many(self, records: Sequence[VisibilityRecord]) -> None:
        """:meth:`upsert` for a batch, in one round trip; validates every record before writing any."""
        ...

    async def delete(
        self, namespace_id: str, workflow_id: str, run_id: str, *, task_id: int | None = None
    ) -> None:
        """Removes a run's record (a no-op when absent); with ``task_id``, only if not newer than it."""
        ...

    async def list(
        self, namespace_id: str, query: str = "", page_size: int = 100, page_token: bytes | None = None
    ) -> Page:
        """Records matching ``query`` in its ORDER BY (default: StartTime DESC), one page at a time."""
        ...

    async def scan(
        self, namespace_id: str, query: str = "", page_size: int = 1000, page_token: bytes | None = None
    ) -> Page:
        """Like :meth:`list` in no promised order (the store's cheapest), for batch jobs.

        An ORDER BY in ``query`` is ignored.
        """
        ...

    async def count(self, namespace_id: str, query: str = "") -> int:
        """How many records match ``query``."""
        ...

    async def count_group_by_status(self, namespace_id: str, query: str = "") -> dict[str, int]:
        """How many records match ``query`` per ExecutionStatus name (statuses with none are left out)."""
        ...

    async def get_search_attributes(self) -> dict[str, SearchAttributeType]:
        """Every search attribute of the cluster, system and custom, by name."""
        ...

    async def add_search_attributes(self, attributes: Mapping[str, SearchAttributeType | str]) -> None:
        """Registers custom attributes (all or none); re-adding one with its type is a no-op."""
        ...

    async def close(self) -> None:
        """Releases connections and threads."""
        ...


class QueryingStore:
    """What both stores do the same way: keep the registry, parse queries, validate records."""

    def __init__(self, registry: SearchAttributeRegistry) -> None:
        self.registry = registry

    async def parse(self, query: str) -> Query:
        """Parses ``query``; if it fails, re-reads the registry once in case another process added the
        attribute it names, so a freshly registered attribute is usable without a restart."""
        try:
            return parse_query(query, self.registry.types)
        except QueryError:
            before = self.registry.custom
            await self.registry.load()
            if self.registry.custom == before:
                raise
            return parse_query(query, self.registry.types)

    async def validate(self, records: Sequence[VisibilityRecord]) -> list[VisibilityRecord]:
        """The records with their custom attributes checked and typed (an int for a Double becomes a
        float, RFC 3339 text a datetime); the registry is re-read once on an unknown name."""
        try:
            return self._validate(records)
        except SearchAttributeError:
            await self.registry.load()
            return self._validate(records)

    def _validate(self, records: Sequence[VisibilityRecord]) -> list[VisibilityRecord]:
        out = []
        for record in records:
            if not record.search_attributes:
                out.append(record)  # nothing to check or type (most records)
                continue
            try:
                typed = self.registry.validate(record.search_attributes)
            except SearchAttributeError as e:
                raise SearchAttributeError(
                    f"workflow {record.workflow_id} run {record.run_id}: {e}"
                ) from None
            out.append(dataclasses.replace(record, search_attributes=typed))
        return out

    async def get_search_attributes(self) -> dict[str, SearchAttributeType]:
        await self.registry.load()
        return dict(self.registry.types)

    async def add_search_attributes(self, attributes: Mapping[str, SearchAttributeType | str]) -> None:
        await self.registry.add_many(attributes)


def check_page_size(page_size: int) -> None:
    """Refuses a page size the stores cannot serve in one request."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
