"""Page tokens: opaque bytes holding where the last page ended, usable with either store.

A token is the ordering it belongs to plus the last record's sort value and run id. The next page is
the same query AND :class:`~cadenza.visibility.query._ast.Seek` (strictly after that pair), so paging
needs no offsets or server-side cursors, stays stable while records are added, and a token from the
SQLite store resumes the same listing on Elasticsearch.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence

from cadenza.visibility._time import MAX_MICROS, MIN_MICROS
from cadenza.visibility.errors import InvalidPageTokenError
from cadenza.visibility.query._ast import Attribute, OrderBy, Query, Seek, conjoin
from cadenza.visibility.record import VisibilityRecord
from cadenza.visibility.search_attributes import SearchAttributeType

_VERSION = 1
_INT64 = (-(2**63), 2**63 - 1)

DEFAULT_ORDER = OrderBy(Attribute("StartTime", SearchAttributeType.DATETIME, True), descending=True)
"""The order of a list without ORDER BY: newest first."""

SCAN_ORDER = OrderBy(Attribute("RunId", SearchAttributeType.KEYWORD, True), descending=False)
"""The order scans use: the cheapest stable one (the primary key), which callers must not rely on."""


def encode_page_token(order: OrderBy, last: VisibilityRecord) -> bytes:
    """The token of the page that ended with ``last`` in ``order``."""
    body = {
        "v": _VERSION,
        "o": order.attribute.name,
        "d": order.descending,
        "s": last.query_value(order.attribute.name),
        "r": last.run_id,
    }
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode())


def decode_page_token(token: bytes, order: OrderBy) -> Seek:
    """The filter that resumes after ``token``; refuses a token made for another ordering."""
    try:
        body = json.loads(base64.urlsafe_b64decode(token))
        version, name, descending, value, run_id = body["v"], body["o"], body["d"], body["s"], body["r"]
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        raise InvalidPageTokenError("invalid page token: not produced by a list or scan") from None
    if version != _VERSION or not isinstance(run_id, str):
        raise InvalidPageTokenError("invalid page token: unknown format")
    if name != order.attribute.name or descending != order.descending:
        raise InvalidPageTokenError(
            f"invalid page token: it continues ORDER BY {name} {'DESC' if descending else 'ASC'}, "
            f"not ORDER BY {order.attribute.name} {'DESC' if order.descending else 'ASC'}"
        )
    if value is not None and not _fits(order.attribute.type, value):
        # The value reaches SQLite as a parameter and Elasticsearch as JSON: an int past 64 bits,
        # an infinity or a datetime past year 9999 would fail there, not here.
        raise InvalidPageTokenError(
            f"invalid page token: sort value {str(value)[:40]!r} is not a {order.attribute.type.value} "
            f"value of {order.attribute.name}"
        )
    return Seek(order.attribute, order.descending, value, run_id)


def _fits(type_: SearchAttributeType, value: object) -> bool:
    """Whether ``value`` is what ``VisibilityRecord.query_value`` gives for an attribute of ``type_``."""
    T = SearchAttributeType
    if type_ is T.BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if type_ is T.INT:
        return isinstance(value, int) and _INT64[0] <= value <= _INT64[1]
    if type_ is T.DATETIME:
        return isinstance(value, int) and MIN_MICROS <= value <= MAX_MICROS
    if type_ is T.DOUBLE:
        return isinstance(value, int | float) and math.isfinite(value)
    return isinstance(value, str)


def resume(query: Query, token: bytes | None, default_order: OrderBy = DEFAULT_ORDER) -> Query:
    """``query`` with its effective ordering and, when ``token`` is given, the filter resuming after it."""
    order = query.order_by or default_order
    seek = decode_page_token(token, order) if token else None
    return Query(conjoin(query.where, seek), order)


def next_page(
    records: Sequence[VisibilityRecord], page_size: int, order: OrderBy
) -> tuple[list[VisibilityRecord], bytes | None]:
    """Splits ``page_size + 1`` fetched records into the page and the token of the next one (None at the end).

    Fetching one extra record is how a store knows there is more without a second query.
    """
    page = list(records[:page_size])
    if len(records) <= page_size or not page:
        return page, None
    return page, encode_page_token(order, page[-1])
