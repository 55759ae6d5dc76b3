"""Search attributes: their types, the system ones, the per-cluster registry of custom ones, payloads.

A search attribute is a typed, indexed field of a visibility record. The system attributes come from
the record itself (``WorkflowType``, ``StartTime``, ...); custom ones are registered per cluster
(``SearchAttributeRegistry.add``) and set by workflows at start or by ``upsert_search_attributes``.
On the wire a value is a payload (see ``cadenza.schemas.events``): JSON data with encoding
``json/plain``; datetimes travel as RFC 3339 text. In records and queries they are typed Python values.
"""

from __future__ import annotations

import difflib
import enum
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from cadenza.visibility._time import datetime_to_micros, micros_to_datetime, parse_rfc3339
from cadenza.visibility.errors import SearchAttributeError


class SearchAttributeType(enum.StrEnum):
    """The indexed type of a search attribute (the anchors' names)."""

    KEYWORD = "Keyword"
    """An exact string: equality, ranges, ``IN``, ``STARTS_WITH``, sorting."""
    TEXT = "Text"
    """Full text: only ``=`` / ``!=``, meaning "contains this phrase" (case-insensitive, by words)."""
    INT = "Int"
    """A signed 64-bit integer."""
    DOUBLE = "Double"
    """A 64-bit float."""
    BOOL = "Bool"
    """True or false: equality and ``IN`` only."""
    DATETIME = "Datetime"
    """An instant with microsecond precision; RFC 3339 text in queries and payloads."""
    KEYWORD_LIST = "KeywordList"
    """A list of exact strings; a predicate holds when it holds for any element."""


SearchAttributeValue = str | int | float | bool | datetime | list[str]
"""A typed search-attribute value as records carry it (a ``datetime`` is always timezone-aware)."""

SYSTEM_SEARCH_ATTRIBUTES: Mapping[str, SearchAttributeType] = {
    "WorkflowId": SearchAttributeType.KEYWORD,
    "RunId": SearchAttributeType.KEYWORD,
    "WorkflowType": SearchAttributeType.KEYWORD,
    "ExecutionStatus": SearchAttributeType.KEYWORD,
    "StartTime": SearchAttributeType.DATETIME,
    "CloseTime": SearchAttributeType.DATETIME,
    "ExecutionTime": SearchAttributeType.DATETIME,
    "HistoryLength": SearchAttributeType.INT,
    "TaskQueue": SearchAttributeType.KEYWORD,
}
"""Attributes every record has (``CloseTime`` only once closed); they cannot be registered again."""

# Words of the list-query language: an attribute with one of these names could not be queried.
RESERVED_WORDS = frozenset(
    {
        "AND",
        "OR",
        "NOT",
        "IN",
        "BETWEEN",
        "STARTS_WITH",
        "IS",
        "NULL",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "TRUE",
        "FALSE",
    }
)

MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_INT64 = (-(2**63), 2**63 - 1)
JSON_ENCODING = b"json/plain"


def close_matches(name: str, candidates: Iterable[str]) -> list[str]:
    """Candidates that look like ``name`` (same letters in another case first), for error messages."""
    pool = sorted(candidates)
    same_case = [c for c in pool if c.lower() == name.lower() and c != name]
    fuzzy = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    return list(dict.fromkeys(same_case + [c for c in fuzzy if c != name]))


def validate_name(name: str) -> None:
    """Refuses a custom attribute name that is malformed, reserved or the name of a system attribute."""
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        raise SearchAttributeError(
            f"invalid search attribute name {name!r}: use a letter then letters, digits or '_', "
            f"at most {MAX_NAME_LENGTH} characters"
        )
    if name.upper() in RESERVED_WORDS:
        raise SearchAttributeError(
            f"invalid search attribute name {name!r}: it is a word of the query language"
        )
    for system in SYSTEM_SEARCH_ATTRIBUTES:
        if system.lower() == name.lower():
            raise SearchAttributeError(
                f"invalid search attribute name {name!r}: {system} is a system attribute"
            )


def coerce_value(name: str, type_: SearchAttributeType, value: Any) -> SearchAttributeValue:
    """``value`` as the typed value of attribute ``name``; raises naming the attribute and the value.

    Ints are accepted for Double (as floats), RFC 3339 text for Datetime, a tuple for KeywordList.
    """

    def bad(expected: str) -> SearchAttributeError:
        return SearchAttributeError(
            f"search attribute {name} has type {type_.value}: value {value!r} is not {expected}"
        )

    if type_ is not SearchAttributeType.KEYWORD_LIST and isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]  # a one-value list, as temporalio's untyped search attributes carry values
    if type_ in (SearchAttributeType.KEYWORD, SearchAttributeType.TEXT):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if type_ is SearchAttributeType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        if not _INT64[0] <= value <= _INT64[1]:
            raise bad("a 64-bit integer")
        return value
    if type_ is SearchAttributeType.DOUBLE:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        result = float(value)
        if result != result or result in (float("inf"), float("-inf")):
            raise bad("a finite number")
        return result
    if type_ is SearchAttributeType.BOOL:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if type_ is SearchAttributeType.DATETIME:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise bad("a timezone-aware datetime")
            return micros_to_datetime(datetime_to_micros(value))
        if isinstance(value, str):
            micros = parse_rfc3339(value)
            if micros is None:
                raise bad("an RFC 3339 date-time such as '2026-11-01T00:00:00Z'")
            return micros_to_datetime(micros)
        raise bad("a datetime")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise bad("a list of strings")
    return list(value)


def encode_search_attribute(value: SearchAttributeValue) -> dict[str, Any]:
    """The payload of a typed value (JSON, datetimes as RFC 3339 text)."""
    plain: Any = value.isoformat() if isinstance(value, datetime) else value
    return {"metadata": {"encoding": JSON_ENCODING}, "data": json.dumps(plain).encode()}


def decode_search_attribute(
    name: str, type_: SearchAttributeType, payload: Mapping[str, Any]
) -> SearchAttributeValue:
    """The typed value of attribute ``name`` carried by ``payload``; raises naming both on any problem."""
    encoding = payload.get("metadata", {}).get("encoding")
    if encoding != JSON_ENCODING:
        raise SearchAttributeError(
            f"search attribute {name}: payload encoding {encoding!r} is not {JSON_ENCODING.decode()!r}"
        )
    try:
        value = json.loads(payload.get("data", b""))
    except ValueError as e:
        raise SearchAttributeError(f"search attribute {name}: payload data is not JSON ({e})") from None
    return coerce_value(name, type_, value)


class SearchAttributeStorage(Protocol):
    """Where a cluster keeps its custom search attributes (a SQLite table, an index's mapping, memory)."""

    async def load_search_attributes(self) -> dict[str, SearchAttributeType]:
        """Every custom attribute registered so far."""
        ...

    async def save_search_attributes(self, attributes: Mapping[str, SearchAttributeType]) -> None:
        """Records new attributes (already validated: names are new or keep their type)."""
        ...


class InMemorySearchAttributeStorage:
    """A :class:`SearchAttributeStorage` in a dict, for tests and one-process setups."""

    def __init__(self, attributes: Mapping[str, SearchAttributeType] | None = None) -> None:
        self._attributes = dict(attributes or {})

    async def load_search_attributes(self) -> dict[str, SearchAttributeType]:
        return dict(self._attributes)

    async def save_search_attributes(self, attributes: Mapping[str, SearchAttributeType]) -> None:
        self._attributes.update(attributes)


class SearchAttributeRegistry:
    """The search attributes of a cluster: the system ones plus the registered custom ones.

    Lookups are synchronous on a cached copy; :meth:`load` refreshes it from storage and :meth:`add`
    re-reads storage before checking, so an attribute registered by another process is not re-typed.
    """

    def __init__(self, storage: SearchAttributeStorage | None = None) -> None:
        self._storage: SearchAttributeStorage = storage or InMemorySearchAttributeStorage()
        self._custom: dict[str, SearchAttributeType] = {}

    @property
    def custom(self) -> Mapping[str, SearchAttributeType]:
        """The custom attributes, by name."""
        return dict(self._custom)

    @property
    def types(self) -> Mapping[str, SearchAttributeType]:
        """Every attribute (system and custom), by name."""
        return {**SYSTEM_SEARCH_ATTRIBUTES, **self._custom}

    def is_system(self, name: str) -> bool:
        """Whether ``name`` is a system attribute."""
        return name in SYSTEM_SEARCH_ATTRIBUTES

    def type_of(self, name: str) -> SearchAttributeType:
        """The type of ``name``; raises naming the attribute and the close matches when unknown."""
        found = SYSTEM_SEARCH_ATTRIBUTES.get(name) or self._custom.get(name)
        if found is None:
            raise SearchAttributeError(unknown_attribute_message(name, self.types))
        return found

    async def load(self) -> None:
        """Refreshes the cached custom attributes from storage."""
        self._custom = await self._storage.load_search_attributes()

    async def add(self, name: str, type_: SearchAttributeType | str) -> None:
        """Registers one custom attribute; re-adding with the same type is a no-op."""
        await self.add_many({name: type_})

    async def add_many(self, attributes: Mapping[str, SearchAttributeType | str]) -> None:
        """Registers custom attributes, all or none; every problem is reported in one error."""
        await self.load()
        problems: list[str] = []
        new: dict[str, SearchAttributeType] = {}
        for name, raw_type in attributes.items():
            try:
                validate_name(name)
            except SearchAttributeError as e:
                problems.append(str(e))
                continue
            try:
                type_ = SearchAttributeType(raw_type)
            except ValueError:
                known = ", ".join(t.value for t in SearchAttributeType)
                problems.append(f"search attribute {name}: unknown type {raw_type!r} (one of {known})")
                continue
            existing = self._custom.get(name)
            if existing is not None and existing is not type_:
                problems.append(
                    f"search attribute {name} already has type {existing.value}: cannot make it {type_.value}"
                )
            elif existing is None:
                new[name] = type_
        if problems:
            raise SearchAttributeError("; ".join(problems))
        if new:
            await self._storage.save_search_attributes(new)
            self._custom.update(new)

    def validate(self, values: Mapping[str, Any]) -> dict[str, SearchAttributeValue]:
        """Typed values for custom attributes; every unknown name or wrong value is reported at once."""
        problems: list[str] = []
        result: dict[str, SearchAttributeValue] = {}
        for name, value in values.items():
            if name in SYSTEM_SEARCH_ATTRIBUTES:
                problems.append(f"search attribute {name} is a system attribute and cannot be set")
                continue
            type_ = self._custom.get(name)
            if type_ is None:
                problems.append(unknown_attribute_message(name, self.types))
                continue
            try:
                result[name] = coerce_value(name, type_, value)
            except SearchAttributeError as e:
                problems.append(str(e))
        if problems:
            raise SearchAttributeError("; ".join(problems))
        return result

    def decode(self, payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, SearchAttributeValue]:
        """Typed values of search-attribute payloads (as carried by history events)."""
        problems: list[str] = []
        raw: dict[str, SearchAttributeValue] = {}
        for name, payload in payloads.items():
            try:
                raw[name] = decode_search_attribute(name, self.type_of(name), payload)
            except SearchAttributeError as e:
                problems.append(str(e))
        if problems:
            raise SearchAttributeError("; ".join(problems))
        return self.validate(raw)


def unknown_attribute_message(name: str, known: Iterable[str]) -> str:
    """ "unknown search attribute X (did you mean ...?)" with the close matches among ``known``."""
    matches = close_matches(name, known)
    hint = f" (did you mean {', '.join(matches)}?)" if matches else ""
    return f"unknown search attribute {name}{hint}"
