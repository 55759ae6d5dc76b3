"""Visibility: the records list/count/scan APIs search, the list-query language, and their stores.

The engine produces a :class:`VisibilityRecord` when a run starts, upserts search attributes and
closes; a :class:`VisibilityStore` (``SqliteVisibilityStore`` embedded, ``ElasticsearchVisibilityStore``
on real services) indexes it and answers queries such as
``WorkflowType = 'Transcode' AND ExecutionStatus = 'Running' ORDER BY StartTime DESC``
(see :mod:`cadenza.visibility.query`). Custom search attributes are registered per cluster in a
:class:`SearchAttributeRegistry`. The store modules are imported on demand, so using SQLite does not
import the Elasticsearch client.
"""

from cadenza.visibility.errors import (
    InvalidPageTokenError,
    QueryError,
    SearchAttributeError,
    VisibilityError,
    VisibilityStoreError,
)
from cadenza.visibility.record import STATUS_BY_NAME, STATUS_NAMES, VisibilityRecord
from cadenza.visibility.search_attributes import (
    SYSTEM_SEARCH_ATTRIBUTES,
    InMemorySearchAttributeStorage,
    SearchAttributeRegistry,
    SearchAttributeStorage,
    SearchAttributeType,
    SearchAttributeValue,
)
from cadenza.visibility.store import Page, VisibilityStore

__all__ = [
    "STATUS_BY_NAME",
    "STATUS_NAMES",
    "SYSTEM_SEARCH_ATTRIBUTES",
    "InMemorySearchAttributeStorage",
    "InvalidPageTokenError",
    "Page",
    "QueryError",
    "SearchAttributeError",
    "SearchAttributeRegistry",
    "SearchAttributeStorage",
    "SearchAttributeType",
    "SearchAttributeValue",
    "VisibilityError",
    "VisibilityRecord",
    "VisibilityStore",
    "VisibilityStoreError",
]
