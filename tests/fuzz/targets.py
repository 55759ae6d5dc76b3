"""Fuzz targets: every decoder a stranger can reach, each behind ``one_input(data: bytes) -> None``.

A target swallows the errors its decoder documents (the ones the server answers with
INVALID_ARGUMENT, or a consumer sends to its DLQ) and lets anything else escape: an escaping
exception is a finding. Hangs and unbounded allocations are findings too; the runner (``run.py``)
catches them with libFuzzer's ``-timeout`` and ``-rss_limit_mb``.

Inputs are plain bytes, so a finding saved under ``regressions/<target>/`` replays with no fuzzer
installed (``test_regressions.py``). Where one target covers several decoders, the first byte
picks which.

Targets (keep about eight: each costs a minute of the suite):

* ``grpc_requests``: byte 0 picks an API method, the rest is its request; decoded as the server
  does and converted by the method's handler against a stand-in frontend whose every call stops
  the handler (``_FrontendReached``), so the whole conversion runs without an engine.
* ``task_tokens``: workflow and activity task tokens (``decode_workflow_token``), the metrics' and
  the log context's peek at them, and list page tokens against each ordering.
* ``bus_messages``: visibility and replication messages, and the history batches they carry.
* ``history_batches``: ``decode_events`` of a stored batch, and its re-encoding.
* ``list_query``: a query, then NUL and a page token; parsed, listed, scanned and counted on the
  SQLite visibility store, and translated to the Elasticsearch DSL.
* ``server_config``: byte 0 even, a server config file (``load_config`` then
  ``settings_from_config``); odd, a dynamic config file (``DynamicConfig``).
* ``cli_json``: byte 0 even, a ``--input`` value; odd, a ``--memo KEY=JSON`` pair; then encoded
  by the data converter as the CLI does next.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cadenza.engine import logcontext
from cadenza.engine.bus.errors import MessageDecodeError
from cadenza.engine.bus.messages import (
    ReplicationMessage,
    decode_message,
    decode_replication,
    decode_visibility,
)
from cadenza.engine.errors import InvalidArgumentError
from cadenza.engine.history.workflow_tasks import decode_token, decode_workflow_token
from cadenza.engine.rpc.handlers import ClusterInfo, Handlers
from cadenza.metrics.frontend import namespace_of_token
from cadenza.metrics.server import ServerMetrics
from cadenza.ops import dynamic_config
from cadenza.ops.commands.common import parse_json_args
from cadenza.ops.commands.workflow import _memo
from cadenza.ops.config import ConfigError, load_config, settings_from_config
from cadenza.schemas import api
from cadenza.schemas.codec import decode_events, encode_events
from cadenza.schemas.registry import SchemaError
from cadenza.sdk.converter import default_converter
from cadenza.sdk.exceptions import PayloadEncodeError
from cadenza.visibility.errors import InvalidPageTokenError, QueryError
from cadenza.visibility.query import (
    DEFAULT_ORDER,
    SCAN_ORDER,
    Attribute,
    OrderBy,
    decode_page_token,
    es_query,
    es_sort,
    resume,
)
from cadenza.visibility.record import VisibilityRecord
from cadenza.visibility.search_attributes import SearchAttributeType
from cadenza.visibility.sqlite_store import SqliteVisibilityStore
from tests.fuzz import seeds

INVALID_ARGUMENT = (SchemaError, ValueError, KeyError, TypeError)
"""What ``rpc/server.py`` answers with INVALID_ARGUMENT when a handler raises it."""

NAMESPACE_ID = "ns-id"
CUSTOM_ATTRIBUTES = {
    "CustomerId": SearchAttributeType.KEYWORD,
    "Description": SearchAttributeType.TEXT,
    "Priority": SearchAttributeType.INT,
    "Score": SearchAttributeType.DOUBLE,
    "IsPremium": SearchAttributeType.BOOL,
    "DueDate": SearchAttributeType.DATETIME,
    "Tags": SearchAttributeType.KEYWORD_LIST,
}


@dataclass(frozen=True)
class Target:
    name: str
    one_input: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    max_len: int
    """libFuzzer's ``-max_len``: large enough for every seed and room to grow."""
    dictionary: tuple[bytes, ...] = ()
    """Tokens libFuzzer splices into inputs: the values that broke decoders before (numbers past
    64 bits or a float's range, deep nesting, bytes that are not UTF-8) are found in seconds
    instead of never."""


_HOSTILE = (
    b"1e999",
    b"-1e999",
    b"NaN",
    b"Infinity",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"99999999999999999999999999999999",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b'{"a":{"a":{"a":{"a":',
    b"\xff\xfe",
    b"\xed\xa0\x80",
)


# -- gRPC requests ---------------------------------------------------------------------------------


class _FrontendReached(Exception):
    """The handler finished converting the request and called the frontend."""


class _StandInFrontend:
    """Every frontend method raises ``_FrontendReached``: the handler's conversion is all that runs."""

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            raise _FrontendReached(name)

        return call


_HANDLERS = Handlers(_StandInFrontend(), ClusterInfo()).table()


def grpc_requests(data: bytes) -> None:
    if not data:
        return
    method = api.METHODS[data[0] % len(api.METHODS)]
    try:
        record = api.decode(f"{method}Request", data[1:])
    except SchemaError:
        return
    # The server does this first when logs are JSON. In a copy of the context: the bound ids would
    # otherwise stay in the caller's (a test's main thread) and show in every later log line.
    contextvars.copy_context().run(logcontext.bind_request, record)
    call = _HANDLERS[method](record)
    try:
        call.send(None)
    except (StopIteration, _FrontendReached, *INVALID_ARGUMENT):
        return
    call.close()
    raise AssertionError(f"the {method} handler waited for something other than the frontend")


def grpc_seeds() -> list[bytes]:
    index = {m: i for i, m in enumerate(api.METHODS)}
    return [bytes([index[m]]) + body for m, body in seeds.api_request_seeds()]


# -- visibility: queries and page tokens -----------------------------------------------------------

_loop = asyncio.new_event_loop()
_store: SqliteVisibilityStore | None = None


def _visibility_store() -> SqliteVisibilityStore:
    """An in-memory store holding a few runs, every custom attribute set on some of them."""
    global _store
    if _store is None:

        async def open_store() -> SqliteVisibilityStore:
            store = await SqliteVisibilityStore.open()
            await store.add_search_attributes(CUSTOM_ATTRIBUTES)
            t0 = 1_700_000_000_000_000
            await store.upsert_many(
                [_record(f"run-{i}", t0 + i) for i in range(3)]
                + [
                    _record(
                        "run-9",
                        t0,
                        search_attributes={
                            "CustomerId": "c-9",
                            "Description": "cleaned video",
                            "Priority": 3,
                            "Score": 1.5,
                            "IsPremium": True,
                            "DueDate": "2026-11-01T00:00:00Z",
                            "Tags": ["hd", "4k"],
                        },
                    )
                ]
            )
            return store

        _store = _loop.run_until_complete(open_store())
    return _store


def _record(run_id: str, start_time: int, **kwargs: Any) -> VisibilityRecord:
    return VisibilityRecord(
        namespace_id=NAMESPACE_ID,
        workflow_id=f"video-{run_id}",
        run_id=run_id,
        workflow_type="Transcode",
        start_time=start_time,
        execution_time=start_time,
        **kwargs,
    )


_ORDERS = [DEFAULT_ORDER, SCAN_ORDER] + [
    OrderBy(Attribute(name, type_, False), descending)
    for name, type_ in CUSTOM_ATTRIBUTES.items()
    if type_ not in (SearchAttributeType.TEXT, SearchAttributeType.KEYWORD_LIST)
    for descending in (False, True)
]


def _list_everywhere(query: str, token: bytes | None) -> None:
    """What a list, scan and count do with ``query`` on the SQLite store, and what the Elasticsearch
    store would send for it (which must be JSON without NaN or infinities)."""
    store = _visibility_store()
    try:
        parsed = _loop.run_until_complete(store.parse(query))
        json.dumps(es_query(resume(parsed, token), NAMESPACE_ID), allow_nan=False)
        json.dumps(es_sort(parsed.order_by or DEFAULT_ORDER), allow_nan=False)
        _loop.run_until_complete(store.list(NAMESPACE_ID, query, 2, token))
        if parsed.order_by is None:
            _loop.run_until_complete(store.scan(NAMESPACE_ID, query, 2, token))
        _loop.run_until_complete(store.count(NAMESPACE_ID, query))
        _loop.run_until_complete(store.count_group_by_status(NAMESPACE_ID, query))
    except (QueryError, InvalidPageTokenError):
        return


def list_query(data: bytes) -> None:
    text, _, token = data.partition(b"\x00")
    try:
        query = text.decode()  # an Avro string: the API never carries invalid UTF-8
    except UnicodeDecodeError:
        return
    _list_everywhere(query, token or None)


_METRICS = ServerMetrics(enabled=True)


def task_tokens(data: bytes) -> None:
    for decode in (decode_workflow_token, decode_token):
        try:
            decode(data)
        except InvalidArgumentError:
            pass
    namespace_of_token(data, _METRICS)
    contextvars.copy_context().run(logcontext.bind_request, {"task_token": data})
    for order in _ORDERS:
        try:
            decode_page_token(data, order)
        except InvalidPageTokenError:
            continue
        # A token for this ordering: resume a real listing with it.
        direction = "DESC" if order.descending else "ASC"
        query = "" if order is SCAN_ORDER else f"ORDER BY {order.attribute.name} {direction}"
        _list_everywhere(query, data)


# -- bus messages and history batches -------------------------------------------------------------


def bus_messages(data: bytes) -> None:
    for decode in (decode_message, decode_visibility, decode_replication):
        try:
            message = decode(data)
        except MessageDecodeError:
            continue
        if isinstance(message, ReplicationMessage):
            # The replicator decodes the batches a history task carries.
            for batch in (message.events, message.new_run_events):
                if batch:
                    history_batches(batch)


def history_batches(data: bytes) -> None:
    try:
        events = decode_events(data)
    except SchemaError:
        return
    # What was read back is written again as is (replication, reset and archival copy batches).
    encode_events(events)


# -- config files -----------------------------------------------------------------------------------

_config_dir = Path(tempfile.mkdtemp(prefix="cadenza-fuzz-config-"))
logging.getLogger("cadenza.dynamicconfig").setLevel(logging.CRITICAL)  # one line per bad file


def server_config(data: bytes) -> None:
    if not data:
        return
    path = _config_dir / ("config.yaml" if data[0] % 2 == 0 else "dynamic.yaml")
    path.write_bytes(data[1:])
    if data[0] % 2 == 1:
        # Read at start-up and on every poll; a bad file keeps the last good values, never raises.
        dynamic_config.DynamicConfig(path)
        return
    try:
        settings_from_config(load_config(path), path)
    except ConfigError:
        return


def config_seeds() -> list[bytes]:
    return [bytes([1 if dynamic else 0]) + body for dynamic, body in seeds.config_seeds()]


# -- CLI JSON ---------------------------------------------------------------------------------------

_converter = default_converter()


def cli_json(data: bytes) -> None:
    if not data:
        return
    # Command-line arguments reach Python as str decoded with surrogateescape.
    text = data[1:].decode("utf-8", "surrogateescape")
    try:
        values = parse_json_args([text]) if data[0] % 2 == 0 else list(_memo((text,)).values())
        _converter.to_payloads(values)
    except (click.BadParameter, PayloadEncodeError):
        return


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("grpc_requests", grpc_requests, grpc_seeds, 16384),
        Target("task_tokens", task_tokens, seeds.token_seeds, 8192, _HOSTILE),
        Target("bus_messages", bus_messages, seeds.bus_seeds, 16384),
        Target("history_batches", history_batches, seeds.history_seeds, 16384),
        Target("list_query", list_query, seeds.list_query_seeds, 4096, (*_HOSTILE, b"((((((((", b"'9999-")),
        Target("server_config", server_config, config_seeds, 16384, (*_HOSTILE, b"&a", b"*a", b".inf")),
        Target("cli_json", cli_json, seeds.cli_json_seeds, 8192, _HOSTILE),
    )
}
