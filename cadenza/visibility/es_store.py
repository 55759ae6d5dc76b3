"""The Elasticsearch visibility store, for clusters running on real services.

One index per cluster (default ``cadenza_visibility_v1``) created from :func:`index_template`, which
follows the anchors' visibility template: keyword fields for ids, type, status and task queue,
``date_nanos`` for times, ``dynamic: false``, and the custom attributes as typed sub-fields of
``search_attributes`` added to the mapping when registered. The registry itself lives in the index
mapping's ``_meta``, so every process reading the index agrees on it.

Writes use external versioning with ``version = task_id``: Elasticsearch refuses a document whose
version is not above the stored one, which is exactly "a late or duplicated update never overwrites
a newer one"; that refusal (409) is therefore success, as is a 404 on delete.

The calls go through the synchronous ``elasticsearch`` client on worker threads: the async client
needs an aiohttp/httpx transport the project does not depend on, and the thread hop is small next to
the HTTP round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from elasticsearch import ApiError, ConflictError, Elasticsearch, NotFoundError, TransportError

from cadenza.visibility._time import datetime_to_micros, format_rfc3339, micros_to_datetime, parse_rfc3339
from cadenza.visibility.errors import VisibilityStoreError
from cadenza.visibility.query import CUSTOM_FIELD, SCAN_ORDER, Query, es_query, es_sort, next_page, resume
from cadenza.visibility.record import STATUS_BY_NAME, VisibilityRecord, decode_memo, encode_memo
from cadenza.visibility.search_attributes import (
    SearchAttributeRegistry,
    SearchAttributeType,
    SearchAttributeValue,
)
from cadenza.visibility.store import Page, QueryingStore, check_page_size

R = TypeVar("R")
T = SearchAttributeType

DEFAULT_INDEX = "cadenza_visibility_v1"

FIELD_TYPES: Mapping[SearchAttributeType, str] = {
    T.KEYWORD: "keyword",
    T.TEXT: "text",
    T.INT: "long",
    T.DOUBLE: "double",
    T.BOOL: "boolean",
    T.DATETIME: "date_nanos",
    T.KEYWORD_LIST: "keyword",
}
"""The Elasticsearch field type of each search-attribute type."""

_DATE = {"type": "date_nanos", "format": "strict_date_optional_time_nanos"}


TEMPLATE_VERSION = 1
"""The version of :func:`index_template`; bump it when the template changes, so that
``cadenza admin elasticsearch update-index`` knows an index needs the new fields."""


def index_template(index: str) -> dict[str, Any]:
    """The index template for ``index`` (pattern ``index*``), as ``put_index_template`` takes it."""
    return {
        "index_patterns": [f"{index}*"],
        "version": TEMPLATE_VERSION,
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "dynamic": "false",
                "_meta": {"search_attributes": {}},
                "properties": {
                    "NamespaceId": {"type": "keyword"},
                    "WorkflowId": {"type": "keyword"},
                    "RunId": {"type": "keyword"},
                    "WorkflowType": {"type": "keyword"},
                    "StartTime": _DATE,
                    "ExecutionTime": _DATE,
                    "CloseTime": _DATE,
                    "ExecutionStatus": {"type": "keyword"},
                    "HistoryLength": {"type": "long"},
                    "TaskQueue": {"type": "keyword"},
                    "Memo": {"type": "object", "enabled": False},
                    CUSTOM_FIELD: {"type": "object", "dynamic": "false", "properties": {}},
                },
            },
        },
    }


class ElasticsearchVisibilityStore(QueryingStore):
    """A :class:`~cadenza.visibility.store.VisibilityStore` on Elasticsearch. Create with :meth:`open`."""

    def __init__(self, client: Elasticsearch, *, index: str = DEFAULT_INDEX) -> None:
        self.client = client
        self.index = index
        super().__init__(SearchAttributeRegistry(_MappingSearchAttributeStorage(self)))

    @classmethod
    async def open(
        cls, client_or_url: Elasticsearch | str, *, index: str = DEFAULT_INDEX, setup: bool = True
    ) -> ElasticsearchVisibilityStore:
        """A store on ``index``; with ``setup``, creates the template and the index when missing."""
        client = Elasticsearch(client_or_url) if isinstance(client_or_url, str) else client_or_url
        store = cls(client, index=index)
        if setup:
            await store.setup()
        await store.registry.load()
        return store

    async def _call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Runs one client call on a worker thread, turning transport and server errors into ours."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (ConflictError, NotFoundError):
            raise
        except (ApiError, TransportError) as e:
            raise VisibilityStoreError(f"Elasticsearch index {self.index}: {e}") from e

    async def setup(self) -> None:
        """Creates (or updates) the index template, then the index if it does not exist."""
        await self._call(
            self.client.indices.put_index_template, name=self.index, **index_template(self.index)
        )
        if not await self._call(self.client.indices.exists, index=self.index):
            try:
                await self._call(self.client.indices.create, index=self.index)
            except VisibilityStoreError as e:
                if "resource_already_exists_exception" not in str(e):  # created meanwhile by another process
                    raise

    async def drop(self) -> None:
        """Deletes the index and its template (tests and ``admin`` tooling only)."""
        await self._call(self.client.indices.delete, index=self.index, ignore_unavailable=True)
        await self._call(self.client.indices.delete_index_template, name=self.index)

    async def refresh(self) -> None:
        """Makes every write so far searchable now rather than within the refresh interval (1 s)."""
        await self._call(self.client.indices.refresh, index=self.index)

    async def close(self) -> None:
        """Closes the client's connections."""
        await asyncio.to_thread(self.client.close)

    # -- writes ----------------------------------------------------------------------------------

    async def upsert(self, record: VisibilityRecord) -> None:
        await self.upsert_many([record])

    async def upsert_many(self, records: Sequence[VisibilityRecord]) -> None:
        if not records:
            return
        typed = await self.validate(records)
        operations: list[dict[str, Any]] = []
        for r in typed:
            operations.append(
                {
                    "index": {
                        "_index": self.index,
                        "_id": doc_id(r.namespace_id, r.run_id),
                        "version": r.task_id,
                        "version_type": "external",
                    }
                }
            )
            operations.append(_document(r))
        response = await self._call(self.client.bulk, operations=operations)
        if response.get("errors"):
            failures = [
                f"{item['_id']}: {item.get('error')}"
                for entry in response["items"]
                for item in entry.values()
                if item.get("status", 200) >= 300 and item.get("status") != 409
            ]
            if failures:
                raise VisibilityStoreError(
                    f"Elasticsearch index {self.index}: {len(failures)} of {len(typed)} records not indexed: "
                    + "; ".join(failures[:5])
                )

    async def delete(
        self, namespace_id: str, workflow_id: str, run_id: str, *, task_id: int | None = None
    ) -> None:
        version: dict[str, Any] = {} if task_id is None else {"version": task_id, "version_type": "external"}
        try:
            await self._call(self.client.delete, index=self.index, id=doc_id(namespace_id, run_id), **version)
        except (NotFoundError, ConflictError):
            pass  # already gone, or the stored record is newer than the deletion

    # -- reads -----------------------------------------------------------------------------------

    async def list(
        self, namespace_id: str, query: str = "", page_size: int = 100, page_token: bytes | None = None
    ) -> Page:
        check_page_size(page_size)
        return await self._page(namespace_id, resume(await self.parse(query), page_token), page_size)

    async def scan(
        self, namespace_id: str, query: str = "", page_size: int = 1000, page_token: bytes | None = None
    ) -> Page:
        check_page_size(page_size)
        parsed = await self.parse(query)
        return await self._page(namespace_id, resume(Query(parsed.where), page_token, SCAN_ORDER), page_size)

    async def _page(self, namespace_id: str, query: Query, page_size: int) -> Page:
        assert query.order_by is not None  # resume() always sets it
        response = await self._call(
            self.client.search,
            index=self.index,
            query=es_query(query, namespace_id),
            sort=es_sort(query.order_by),
            size=page_size + 1,
            track_total_hits=False,
            version=True,
        )
        types = self.registry.types
        records = [_record(hit["_source"], hit["_version"], types) for hit in response["hits"]["hits"]]
        return next_page(records, page_size, query.order_by)

    async def count(self, namespace_id: str, query: str = "") -> int:
        parsed = await self.parse(query)
        response = await self._call(self.client.count, index=self.index, query=es_query(parsed, namespace_id))
        return int(response["count"])

    async def count_group_by_status(self, namespace_id: str, query: str = "") -> dict[str, int]:
        parsed = await self.parse(query)
        response = await self._call(
            self.client.search,
            index=self.index,
            query=es_query(parsed, namespace_id),
            size=0,
            aggs={"status": {"terms": {"field": "ExecutionStatus", "size": len(STATUS_BY_NAME)}}},
        )
        buckets = response["aggregations"]["status"]["buckets"]
        return {b["key"]: int(b["doc_count"]) for b in buckets if b["doc_count"]}


class _MappingSearchAttributeStorage:
    """The registry's storage: ``_meta.search_attributes`` of the index mapping, plus the typed fields."""

    def __init__(self, store: ElasticsearchVisibilityStore) -> None:
        self._store = store

    async def load_search_attributes(self) -> dict[str, SearchAttributeType]:
        store = self._store
        response = await store._call(store.client.indices.get_mapping, index=store.index)
        meta = response[store.index]["mappings"].get("_meta", {})
        return {name: SearchAttributeType(t) for name, t in meta.get("search_attributes", {}).items()}

    async def save_search_attributes(self, attributes: Mapping[str, SearchAttributeType]) -> None:
        store = self._store
        current = await self.load_search_attributes()
        merged = {name: t.value for name, t in {**current, **attributes}.items()}
        properties = {name: {"type": FIELD_TYPES[t]} for name, t in attributes.items()}
        for name, t in attributes.items():
            if t is T.DATETIME:
                properties[name] = dict(_DATE)
        await store._call(
            store.client.indices.put_mapping,
            index=store.index,
            properties={CUSTOM_FIELD: {"properties": properties}},
            meta={"search_attributes": merged},
        )


def doc_id(namespace_id: str, run_id: str) -> str:
    """The document id of a run: namespace and run id, like the SQLite primary key."""
    return f"{namespace_id}~{run_id}"


def _document(r: VisibilityRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "NamespaceId": r.namespace_id,
        "WorkflowId": r.workflow_id,
        "RunId": r.run_id,
        "WorkflowType": r.workflow_type,
        "StartTime": format_rfc3339(r.start_time),
        "ExecutionTime": format_rfc3339(r.execution_time),
        "ExecutionStatus": r.status_name,
        "HistoryLength": r.history_length,
        "TaskQueue": r.task_queue,
        "Memo": encode_memo(r.memo),
        CUSTOM_FIELD: {
            name: format_rfc3339(datetime_to_micros(v)) if isinstance(v, datetime) else v
            for name, v in r.search_attributes.items()
        },
    }
    if r.close_time:
        doc["CloseTime"] = format_rfc3339(r.close_time)
    return doc


def _time(text: str) -> int:
    micros = parse_rfc3339(text)
    if micros is None:  # pragma: no cover - only this module writes the documents
        raise VisibilityStoreError(f"unreadable time {text!r} in a visibility document")
    return micros


def _record(
    src: Mapping[str, Any], version: int, types: Mapping[str, SearchAttributeType]
) -> VisibilityRecord:
    values: dict[str, SearchAttributeValue] = {}
    for name, value in src.get(CUSTOM_FIELD, {}).items():
        if types.get(name) is T.DATETIME:
            values[name] = micros_to_datetime(_time(value))
        else:
            values[name] = value
    return VisibilityRecord(
        namespace_id=src["NamespaceId"],
        workflow_id=src["WorkflowId"],
        run_id=src["RunId"],
        workflow_type=src["WorkflowType"],
        start_time=_time(src["StartTime"]),
        execution_time=_time(src["ExecutionTime"]),
        close_time=_time(src["CloseTime"]) if src.get("CloseTime") else 0,
        status=STATUS_BY_NAME[src["ExecutionStatus"]],
        history_length=src["HistoryLength"],
        task_queue=src["TaskQueue"],
        search_attributes=values,
        memo=decode_memo(src.get("Memo", {})),
        task_id=version,
    )
