"""The typed syntax tree of a list query, as the parser builds it and the translators read it.

Every node names a resolved :class:`Attribute` (its type is known) and carries values already
converted to that type: datetimes as µs integers, Double as float, statuses as their names.

Semantics shared by every store (and pinned by the query corpus): a predicate other than
``IS NULL`` holds only for records that have the attribute, so ``X != 'a'`` and ``X NOT IN (...)``
never match a record without ``X``; for KeywordList a predicate holds when it holds for one
element (the negated forms: for none); Text ``=`` means "contains this phrase", comparing words
case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from cadenza.visibility.search_attributes import SearchAttributeType

Value = str | int | float | bool
"""A typed literal: str (Keyword, Text, KeywordList element, status name), int (Int, Datetime µs),
float (Double), bool (Bool)."""

ComparisonOp = Literal["=", "!=", "<", "<=", ">", ">="]

_WORD = re.compile(r"\w+")


def text_words(text: str) -> list[str]:
    """The lower-cased words of a Text value, the unit Text matching compares.

    Words are runs of letters, digits and ``_``, which is what Elasticsearch's standard analyzer
    produces for the plain words visibility values are made of.
    """
    return [w.lower() for w in _WORD.findall(text)]


@dataclass(frozen=True, slots=True)
class Attribute:
    """A search attribute resolved against the registry."""

    name: str
    type: SearchAttributeType
    system: bool
    """System attributes are record columns / top-level fields; custom ones live apart."""

    @property
    def nullable(self) -> bool:
        """Whether a record may lack it (custom attributes, and ``CloseTime`` of open runs)."""
        return not self.system or self.name == "CloseTime"


@dataclass(frozen=True, slots=True)
class Comparison:
    """``attribute op value``."""

    attribute: Attribute
    op: ComparisonOp
    value: Value


@dataclass(frozen=True, slots=True)
class Between:
    """``attribute [NOT] BETWEEN low AND high`` (both bounds inclusive)."""

    attribute: Attribute
    low: Value
    high: Value
    negated: bool = False


@dataclass(frozen=True, slots=True)
class InList:
    """``attribute [NOT] IN (values...)``."""

    attribute: Attribute
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class StartsWith:
    """``attribute [NOT] STARTS_WITH prefix``."""

    attribute: Attribute
    prefix: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull:
    """``attribute IS [NOT] NULL``: whether the record lacks the attribute."""

    attribute: Attribute
    negated: bool = False


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Seek:
    """Records strictly after ``(value, run_id)`` in the order ``attribute`` (then RunId), same direction.

    Not written by users: paging adds it so that the next page is a filter, not an offset, which keeps
    deep pages as cheap as the first and lets both stores resume from the same token. Records without
    the attribute sort last in both directions; ``value`` None means the last page ended among them.
    """

    attribute: Attribute
    descending: bool
    value: Value | None
    run_id: str


Expr = Comparison | Between | InList | StartsWith | IsNull | And | Or | Seek
"""Any filter node."""


@dataclass(frozen=True, slots=True)
class OrderBy:
    attribute: Attribute
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed list query: an optional filter and an optional ordering."""

    where: Expr | None
    order_by: OrderBy | None = None


def conjoin(*exprs: Expr | None) -> Expr | None:
    """The AND of the given filters, skipping None (None when nothing is left)."""
    present = tuple(e for e in exprs if e is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else And(present)
