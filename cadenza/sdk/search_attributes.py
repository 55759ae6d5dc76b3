"""Typed search attributes: keys that know their indexed type, and collections of typed values.

Plain dicts (``{"CustomKeywordField": "x"}``) work everywhere search attributes are taken; these
types are the typed spelling temporalio users know::

    customer = SearchAttributeKey.for_keyword("CustomKeywordField")
    await client.start_workflow(..., search_attributes=TypedSearchAttributes([
        SearchAttributePair(customer, "c-1"),
    ]))
    workflow.upsert_search_attributes([customer.value_set("c-2")])
    (await handle.describe()).typed_search_attributes[customer]   # "c-2"

A key is matched by name: the type of a stored value is what its writer recorded (or, when it
recorded none, inferred from the value), so reading with a key of another type converts the value
(an int read with a float key comes back as a float) instead of missing it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

__all__ = [
    "SearchAttributeIndexedValueType",
    "SearchAttributeKey",
    "SearchAttributePair",
    "SearchAttributeUpdate",
    "TypedSearchAttributes",
    "search_attribute_values",
    "typed_from_values",
]

T = TypeVar("T")


class SearchAttributeIndexedValueType(enum.IntEnum):
    """How the visibility store indexes an attribute (temporalio's numbering)."""

    TEXT = 1
    KEYWORD = 2
    INT = 3
    DOUBLE = 4
    BOOL = 5
    DATETIME = 6
    KEYWORD_LIST = 7

    @property
    def type_name(self) -> str:
        """The type as search-attribute payload metadata and the server spell it."""
        return _TYPE_NAMES[self]


_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}
_BY_TYPE_NAME = {name: t for t, name in _TYPE_NAMES.items()}


@dataclass(frozen=True)
class SearchAttributeKey(Generic[T]):
    """A search attribute's name and indexed type; build one with the ``for_*`` constructors."""

    name: str
    indexed_value_type: SearchAttributeIndexedValueType

    @property
    def value_type(self) -> type:
        """The Python type of the attribute's values."""
        return _VALUE_TYPES[self.indexed_value_type]

    @staticmethod
    def for_text(name: str) -> SearchAttributeKey[str]:
        return SearchAttributeKey(name, SearchAttributeIndexedValueType.TEXT)

    @staticmethod
    def for_keyword(name: str) -> SearchAttributeKey[str]:
        return SearchAttributeKey(name, SearchAttributeIndexedValueType.KEYWORD)

    @staticmethod
    def for_int(name: str) -> SearchAttributeKey[int]:
        return SearchAttributeKey(name, SearchAttributeIndexedValueType.INT)

    @staticmethod
    def for_float(name: str) -> SearchAttributeKey[float]:
        return SearchAttributeKey(name, SearchAttributeIndexedValueType.DOUBLE)

    @staticmethod
    def for_bool(name: str) -> SearchAttributeKey[bool]:
        return SearchAttributeKey(name, SearchAttributeIndexedValueType.BOOL)

    @staticmethod
    def for_datetime(name: str) -> SearchAttributeKey[datetime]:
        return SearchAttributeKey(name, SearchAttributeIndexedValueType.DATETIME)

    @staticmethod
    def for_keyword_list(name: str) -> SearchAttributeKey[Sequence[str]]:
        return SearchAttributeKey(name, SearchAttributeIndexedValueType.KEYWORD_LIST)

    def value_set(self, value: T) -> SearchAttributeUpdate[T]:
        """An update setting this attribute, for ``workflow.upsert_search_attributes``."""
        return SearchAttributeUpdate(self, value)

    def value_unset(self) -> SearchAttributeUpdate[T]:
        """An update removing this attribute, for ``workflow.upsert_search_attributes``."""
        return SearchAttributeUpdate(self, None)

    def convert(self, value: Any) -> Any:
        """``value`` as this key's type (ints as floats for a float key, ISO text as a datetime)."""
        t = self.indexed_value_type
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if t is SearchAttributeIndexedValueType.DOUBLE and is_int:
            return float(value)
        if t is SearchAttributeIndexedValueType.DATETIME and isinstance(value, str):
            return datetime.fromisoformat(value)
        if t is SearchAttributeIndexedValueType.KEYWORD_LIST and isinstance(value, str):
            return [value]
        if t is not SearchAttributeIndexedValueType.KEYWORD_LIST and isinstance(value, list | tuple):
            return value[0] if len(value) == 1 else value  # a one-value list, as older writers store
        return value


_VALUE_TYPES: dict[SearchAttributeIndexedValueType, type] = {
    SearchAttributeIndexedValueType.TEXT: str,
    SearchAttributeIndexedValueType.KEYWORD: str,
    SearchAttributeIndexedValueType.INT: int,
    SearchAttributeIndexedValueType.DOUBLE: float,
    SearchAttributeIndexedValueType.BOOL: bool,
    SearchAttributeIndexedValueType.DATETIME: datetime,
    SearchAttributeIndexedValueType.KEYWORD_LIST: list,
}


@dataclass(frozen=True)
class SearchAttributePair(Generic[T]):
    """One attribute and its value."""

    key: SearchAttributeKey[T]
    value: T


@dataclass(frozen=True)
class SearchAttributeUpdate(Generic[T]):
    """One change for ``workflow.upsert_search_attributes``; ``value`` None removes the attribute."""

    key: SearchAttributeKey[T]
    value: T | None


class TypedSearchAttributes(Sequence[SearchAttributePair[Any]]):
    """An immutable collection of typed search attributes, one pair per name."""

    empty: TypedSearchAttributes

    def __init__(self, search_attributes: Iterable[SearchAttributePair[Any]] = ()) -> None:
        pairs: dict[str, SearchAttributePair[Any]] = {}
        for pair in search_attributes:
            if not isinstance(pair, SearchAttributePair):
                raise TypeError(f"TypedSearchAttributes takes SearchAttributePair values, got {pair!r}")
            if pair.key.name in pairs:
                raise ValueError(f"search attribute {pair.key.name!r} is given twice")
            pairs[pair.key.name] = pair
        self.search_attributes: Sequence[SearchAttributePair[Any]] = tuple(pairs.values())

    def __len__(self) -> int:
        return len(self.search_attributes)

    def __iter__(self) -> Iterator[SearchAttributePair[Any]]:
        return iter(self.search_attributes)

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        """The value of ``key`` (a ``SearchAttributeKey``; ``KeyError`` when unset); an int indexes
        the pairs, as for any sequence."""
        if isinstance(key, int | slice):
            return self.search_attributes[key]
        for pair in self.search_attributes:
            if pair.key.name == key.name:
                return key.convert(pair.value)
        raise KeyError(key.name)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, SearchAttributeKey):
            return any(p.key.name == key.name for p in self.search_attributes)
        return key in self.search_attributes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TypedSearchAttributes):
            return NotImplemented
        return {p.key.name: p.value for p in self} == {p.key.name: p.value for p in other}

    def __hash__(self) -> int:
        return hash(tuple(p.key.name for p in self))

    def __repr__(self) -> str:
        return f"TypedSearchAttributes({list(self.search_attributes)!r})"

    def get(self, key: SearchAttributeKey[T], default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set."""
        try:
            return self[key]
        except KeyError:
            return default

    def updated(self, *search_attributes: SearchAttributePair[Any]) -> TypedSearchAttributes:
        """A copy with these pairs added or replaced."""
        names = {p.key.name for p in search_attributes}
        return TypedSearchAttributes(
            [p for p in self.search_attributes if p.key.name not in names] + list(search_attributes)
        )


TypedSearchAttributes.empty = TypedSearchAttributes()


def search_attribute_values(values: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Plain ``{name: value}`` from any accepted spelling (a mapping, ``TypedSearchAttributes``,
    or a sequence of updates/pairs), and the declared type names of the typed ones. A value of None
    (``key.value_unset()``) means "remove"."""
    if values is None:
        return {}, {}
    if isinstance(values, Mapping):
        return dict(values), {}
    plain: dict[str, Any] = {}
    types: dict[str, str] = {}
    for item in values:
        if not isinstance(item, SearchAttributePair | SearchAttributeUpdate):
            raise TypeError(
                "search attributes are a dict, TypedSearchAttributes, or a list of "
                f"SearchAttributeKey.value_set(...) updates; got {item!r}"
            )
        value = item.value
        if value is not None and item.key.indexed_value_type is SearchAttributeIndexedValueType.KEYWORD_LIST:
            value = list(value)
        plain[item.key.name] = value
        types[item.key.name] = item.key.indexed_value_type.type_name
    return plain, types


def _infer(value: Any) -> SearchAttributeIndexedValueType:
    if isinstance(value, bool):
        return SearchAttributeIndexedValueType.BOOL
    if isinstance(value, int):
        return SearchAttributeIndexedValueType.INT
    if isinstance(value, float):
        return SearchAttributeIndexedValueType.DOUBLE
    if isinstance(value, datetime):
        return SearchAttributeIndexedValueType.DATETIME
    if isinstance(value, list | tuple):
        return SearchAttributeIndexedValueType.KEYWORD_LIST
    return SearchAttributeIndexedValueType.KEYWORD


def typed_from_values(
    values: Mapping[str, Any], types: Mapping[str, str] | None = None
) -> TypedSearchAttributes:
    """Decoded values as ``TypedSearchAttributes``: typed by ``types`` (the writers' type names)
    where known, else by the values themselves."""
    pairs = []
    for name, value in values.items():
        if value is None:
            continue
        declared = _BY_TYPE_NAME.get((types or {}).get(name, ""))
        key: SearchAttributeKey[Any] = SearchAttributeKey(name, declared or _infer(value))
        pairs.append(SearchAttributePair(key, key.convert(value)))
    return TypedSearchAttributes(pairs)
