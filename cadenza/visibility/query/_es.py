"""Translation of a parsed query to the Elasticsearch query DSL.

System attributes are top-level fields named like the attributes (the anchors' template); custom
ones are sub-fields of ``search_attributes``. Everything is in filter context (no scoring). Negated
predicates add an ``exists`` filter, so, as in SQL, a record without the attribute never matches them.
"""

from __future__ import annotations

from typing import Any

from cadenza.visibility._time import format_rfc3339
from cadenza.visibility.query._ast import (
    And,
    Attribute,
    Between,
    Comparison,
    Expr,
    InList,
    IsNull,
    Or,
    OrderBy,
    Query,
    Seek,
    StartsWith,
    Value,
)
from cadenza.visibility.search_attributes import SearchAttributeType

CUSTOM_FIELD = "search_attributes"
"""The object field holding custom search attributes as typed sub-fields."""

_RANGE_OPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}

Json = dict[str, Any]


def es_field(attr: Attribute) -> str:
    """The document field of an attribute."""
    return attr.name if attr.system else f"{CUSTOM_FIELD}.{attr.name}"


def es_value(attr: Attribute, value: Value) -> Any:
    """A literal as the field expects it (datetimes as RFC 3339 with microseconds)."""
    if attr.type is SearchAttributeType.DATETIME and isinstance(value, int):
        return format_rfc3339(value)
    return value


def es_query(query: Query, namespace_id: str) -> Json:
    """The ``query`` clause selecting ``query``'s records in ``namespace_id``."""
    filters: list[Json] = [{"term": {"NamespaceId": namespace_id}}]
    if query.where is not None:
        filters.append(_expr(query.where))
    return {"bool": {"filter": filters}}


def es_sort(order: OrderBy) -> list[Json]:
    """The ``sort`` clause: the field (records without it last), then RunId in the same direction."""
    direction = "desc" if order.descending else "asc"
    return [
        {es_field(order.attribute): {"order": direction, "missing": "_last"}},
        {"RunId": {"order": direction}},
    ]


def _exists(field: str) -> Json:
    return {"exists": {"field": field}}


def _not(positive: Json, field: str) -> Json:
    return {"bool": {"filter": [_exists(field)], "must_not": [positive]}}


def _any(*clauses: Json) -> Json:
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def _expr(e: Expr) -> Json:
    if isinstance(e, And):
        return {"bool": {"filter": [_expr(o) for o in e.operands]}}
    if isinstance(e, Or):
        return _any(*(_expr(o) for o in e.operands))
    if isinstance(e, Seek):
        return _seek(e)
    attr = e.attribute
    field = es_field(attr)
    if isinstance(e, IsNull):
        return _exists(field) if e.negated else {"bool": {"must_not": [_exists(field)]}}
    if isinstance(e, Comparison):
        if e.op in _RANGE_OPS:
            return {"range": {field: {_RANGE_OPS[e.op]: es_value(attr, e.value)}}}
        if attr.type is SearchAttributeType.TEXT:
            positive: Json = {"match_phrase": {field: e.value}}
        else:
            positive = {"term": {field: es_value(attr, e.value)}}
        return _not(positive, field) if e.op == "!=" else positive
    if isinstance(e, Between):
        positive = {"range": {field: {"gte": es_value(attr, e.low), "lte": es_value(attr, e.high)}}}
    elif isinstance(e, InList):
        positive = {"terms": {field: [es_value(attr, v) for v in e.values]}}
    else:
        assert isinstance(e, StartsWith)
        positive = {"prefix": {field: {"value": e.prefix}}}
    return _not(positive, field) if e.negated else positive


def _seek(e: Seek) -> Json:
    attr = e.attribute
    field = es_field(attr)
    op = "lt" if e.descending else "gt"
    after_run = {"range": {"RunId": {op: e.run_id}}}
    if e.value is None:
        return {"bool": {"filter": [after_run], "must_not": [_exists(field)]}}
    value = es_value(attr, e.value)
    clauses = [
        _strictly_after(field, attr, e.value, op),
        {"bool": {"filter": [{"term": {field: value}}, after_run]}},
    ]
    if attr.nullable:
        clauses.append({"bool": {"must_not": [_exists(field)]}})
    return _any(*clauses)


def _strictly_after(field: str, attr: Attribute, value: Value, op: str) -> Json:
    if attr.type is SearchAttributeType.BOOL:
        # Booleans have two values; a term is clearer than a range over false < true.
        other = (not value) if (value is True) == (op == "lt") else None
        return {"term": {field: other}} if other is not None else {"match_none": {}}
    return {"range": {field: {op: es_value(attr, value)}}}
