"""Translation of a parsed query to SQLite SQL over the visibility tables.

Values never enter the SQL text: every literal becomes a ``?`` parameter, and attribute names only
reach the text through the fixed column map below (custom names are parameters too), so no query
can inject SQL.

Tables (created by ``cadenza.visibility.sqlite_store``): ``executions_visibility v`` holds one row
per run with a column per system attribute (``close_time`` NULL while open); ``search_attributes``
holds one row per custom value (one per element for KeywordList) in the column of its type. A custom
predicate is ``v.run_id IN (SELECT run_id FROM search_attributes WHERE ...)``, which SQLite answers
from the ``(namespace_id, name, <value>)`` indexes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

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
    text_words,
)
from cadenza.visibility.search_attributes import SearchAttributeType

T = SearchAttributeType

SYSTEM_COLUMNS: Mapping[str, str] = {
    "WorkflowId": "workflow_id",
    "RunId": "run_id",
    "WorkflowType": "workflow_type",
    "ExecutionStatus": "status",
    "StartTime": "start_time",
    "CloseTime": "close_time",
    "ExecutionTime": "execution_time",
    "HistoryLength": "history_length",
    "TaskQueue": "task_queue",
}
"""The ``executions_visibility`` column of each system attribute."""

VALUE_COLUMNS: Mapping[SearchAttributeType, str] = {
    T.KEYWORD: "text_value",
    T.TEXT: "text_value",
    T.KEYWORD_LIST: "text_value",
    T.INT: "int_value",
    T.DOUBLE: "double_value",
    T.BOOL: "bool_value",
    T.DATETIME: "datetime_value",
}
"""The ``search_attributes`` column holding values of each type (Text: its words joined by spaces)."""

# The highest code point before the surrogates: incrementing a prefix's last character stays valid
# UTF-8 below it, which lets STARTS_WITH use an index range.
_MAX_SAFE_CHAR = 0xD7FE


SortPhase = Literal["all", "valued", "missing"]
"""How a statement ordered by a custom attribute is built: "all" in one statement (LEFT JOIN, then sort
every match), or in two that read off indexes: "valued" (runs having the attribute, by value) then
"missing" (runs without it, by run id), as records without the sort value come last."""


@dataclass(frozen=True, slots=True)
class SqlQuery:
    """A statement and its parameters, in the order the ``?`` appear."""

    sql: str
    params: tuple[object, ...]


def text_column_value(text: str) -> str:
    """What the ``text_value`` column stores for a Text value: its words, so phrases match by ``instr``."""
    return " ".join(text_words(text))


def select_sql(
    query: Query, namespace_id: str, *, columns: str, limit: int | None = None, phase: SortPhase = "all"
) -> SqlQuery:
    """``SELECT columns`` of the records matching ``query`` in its order (which must be set).

    ``phase`` splits an ORDER BY on a custom attribute in two statements that SQLite can answer from
    indexes instead of sorting every match (see :data:`SortPhase`); the caller adds ``IS NULL`` on the
    sort attribute to the "missing" phase's filter, and only gives it a :class:`Seek` without value.
    """
    assert query.order_by is not None, "resume() sets the ordering"
    ordered_scan = query.order_by.attribute.system or phase != "all"
    b = _Builder(namespace_id, ordered_scan=ordered_scan, phase=phase)
    where = b.where(query.where)
    order = b.order_by(query.order_by) if query.order_by else ""
    sql = f"SELECT {columns} FROM executions_visibility v{b.joins} WHERE {where}{order}"
    params = b.join_params + b.params
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return SqlQuery(sql, tuple(params))


def count_sql(query: Query, namespace_id: str, *, group_by_status: bool = False) -> SqlQuery:
    """``COUNT(*)`` of the matching records, or ``(status, COUNT(*))`` rows when grouping."""
    b = _Builder(namespace_id, ordered_scan=False)
    where = b.where(query.where)
    if group_by_status:
        sql = f"SELECT v.status, COUNT(*) FROM executions_visibility v WHERE {where} GROUP BY v.status"
    else:
        sql = f"SELECT COUNT(*) FROM executions_visibility v WHERE {where}"
    return SqlQuery(sql, tuple(b.params))


class _Builder:
    def __init__(self, namespace_id: str, *, ordered_scan: bool, phase: SortPhase = "all") -> None:
        self.namespace_id = namespace_id
        self.ordered_scan = ordered_scan
        self.phase = phase
        self.params: list[object] = []
        self.joins = ""
        self.join_params: list[object] = []

    def p(self, value: object) -> str:
        self.params.append(value)
        return "?"

    def where(self, expr: Expr | None) -> str:
        namespace = f"v.namespace_id = {self.p(self.namespace_id)}"
        return namespace if expr is None else f"{namespace} AND {self.expr(expr)}"

    def expr(self, e: Expr) -> str:
        if isinstance(e, And):
            return "(" + " AND ".join(self.expr(o) for o in e.operands) + ")"
        if isinstance(e, Or):
            return "(" + " OR ".join(self.expr(o) for o in e.operands) + ")"
        if isinstance(e, IsNull):
            return self.is_null(e)
        if isinstance(e, Seek):
            return self.seek(e)
        attr = e.attribute
        negated = (isinstance(e, Comparison) and e.op == "!=") or (
            isinstance(e, Between | InList | StartsWith) and e.negated
        )
        if attr.system:
            column = f"v.{SYSTEM_COLUMNS[attr.name]}"
            positive = self.condition(column, attr, e)
            if not negated:
                return positive
            guard = f"{column} IS NOT NULL AND " if attr.nullable else ""
            return f"({guard}NOT {positive})"
        column = f"a.{VALUE_COLUMNS[attr.type]}"
        probe = self.ordered_scan and not _selective(attr, e)
        if not negated:
            return self.custom(attr, lambda: self.condition(column, attr, e), probe=probe)
        if attr.type is T.KEYWORD_LIST:
            # "no element matches": has the attribute, and no element row satisfies the predicate.
            has = self.custom(attr, None, probe=probe)
            return (
                f"({has} AND NOT {self.custom(attr, lambda: self.condition(column, attr, e), probe=probe)})"
            )
        return self.custom(attr, lambda: f"NOT {self.condition(column, attr, e)}", probe=probe)

    def custom(self, attr: Attribute, condition: Callable[[], str] | None, *, probe: bool) -> str:
        """The runs having custom attribute ``attr`` with a value satisfying ``condition``.

        Two shapes, for two plans. ``v.run_id IN (SELECT ...)`` lets SQLite start from the
        ``(namespace_id, name, value)`` index: best when few runs match (one customer's runs), and
        for counts, which touch every match anyway. ``EXISTS (... a.run_id = v.run_id ...)`` is a
        probe per row while SQLite walks the ORDER BY index: best when many runs match, because
        a page of 100 is found after a few hundred probes instead of collecting every match and
        sorting (measured at 100k runs: 155 ms for ``Priority > 5`` as IN, a few ms as EXISTS).
        ``condition`` is a callable so that its parameters are added after this clause's own.

        The probe names its index (``INDEXED BY sa_run``, an equality on all three columns): left
        to choose, SQLite without ``ANALYZE`` statistics (a store that was never optimized, as
        every server's is) takes the covering value index for a range (``int_value > ?``) and
        scans every run in that range on each probe: 444 ms instead of 2 ms for
        ``WorkflowType = 'Transcode' AND CustomIntField > 7`` over 100k runs.
        """
        if probe:
            sql = (
                "EXISTS (SELECT 1 FROM search_attributes a INDEXED BY sa_run"
                " WHERE a.namespace_id = v.namespace_id"
                f" AND a.run_id = v.run_id AND a.name = {self.p(attr.name)}"
            )
        else:
            sql = (
                f"v.run_id IN (SELECT a.run_id FROM search_attributes a WHERE a.namespace_id = "
                f"{self.p(self.namespace_id)} AND a.name = {self.p(attr.name)}"
            )
        return sql + (f" AND {condition()})" if condition else ")")

    def condition(self, column: str, attr: Attribute, e: Expr) -> str:
        """The positive form of a leaf predicate on ``column`` (negation is applied by the caller)."""
        if isinstance(e, Comparison):
            if attr.type is T.TEXT:
                phrase = f" {text_column_value(str(e.value))} "
                return f"(instr(' ' || {column} || ' ', {self.p(phrase)}) > 0)"
            op = "=" if e.op == "!=" else e.op
            return f"({column} {op} {self.p(e.value)})"
        if isinstance(e, Between):
            return f"({column} BETWEEN {self.p(e.low)} AND {self.p(e.high)})"
        if isinstance(e, InList):
            return f"({column} IN ({', '.join(self.p(v) for v in e.values)}))"
        if isinstance(e, StartsWith):
            return self.starts_with(column, e.prefix)
        raise TypeError(f"not a leaf predicate: {e!r}")  # pragma: no cover - the parser builds no other

    def starts_with(self, column: str, prefix: str) -> str:
        # The range lets SQLite seek an index; substr() keeps the exact meaning whatever the range is.
        parts = [f"{column} >= {self.p(prefix)}"]
        if prefix and ord(prefix[-1]) < _MAX_SAFE_CHAR:
            parts.append(f"{column} < {self.p(prefix[:-1] + chr(ord(prefix[-1]) + 1))}")
        parts.append(f"substr({column}, 1, {self.p(len(prefix))}) = {self.p(prefix)}")
        return "(" + " AND ".join(parts) + ")"

    def is_null(self, e: IsNull) -> str:
        if e.attribute.system:
            column = f"v.{SYSTEM_COLUMNS[e.attribute.name]}"
            return f"({column} IS {'NOT ' if e.negated else ''}NULL)"
        has = self.custom(e.attribute, None, probe=self.ordered_scan)
        return has if e.negated else f"NOT {has}"

    def sort_column(self, attr: Attribute) -> str:
        if attr.system:
            return f"v.{SYSTEM_COLUMNS[attr.name]}"
        column = f"s.{VALUE_COLUMNS[attr.type]}"
        if self.phase == "valued" and not self.joins:
            # An inner join on the value row: SQLite walks the (namespace_id, name, value, run_id) index.
            self.joins = (
                " JOIN search_attributes s ON s.namespace_id = v.namespace_id"
                f" AND s.run_id = v.run_id AND s.name = ? AND {column} IS NOT NULL"
            )
            self.join_params = [attr.name]
        if not self.joins:
            # One row per (run, single-valued attribute): a LEFT JOIN brings the sort value, NULL if absent.
            self.joins = (
                " LEFT JOIN search_attributes s ON s.namespace_id = v.namespace_id"
                " AND s.run_id = v.run_id AND s.name = ?"
            )
            self.join_params = [attr.name]
        return f"s.{VALUE_COLUMNS[attr.type]}"

    def seek(self, e: Seek) -> str:
        op = "<" if e.descending else ">"
        if self.phase == "missing":
            return f"(v.run_id {op} {self.p(e.run_id)})"
        column = self.sort_column(e.attribute)
        if self.phase == "valued" and e.value is not None:
            return f"(({column}, s.run_id) {op} ({self.p(_param(e.value))}, {self.p(e.run_id)}))"
        if e.value is None:
            return f"({column} IS NULL AND v.run_id {op} {self.p(e.run_id)})"
        after = f"({column}, v.run_id) {op} ({self.p(_param(e.value))}, {self.p(e.run_id)})"
        # Records without the attribute sort last, so they all come after any valued record.
        return f"({after} OR {column} IS NULL)" if e.attribute.nullable else after

    def order_by(self, order: OrderBy) -> str:
        direction = "DESC" if order.descending else "ASC"
        if self.phase == "missing":
            return f" ORDER BY v.run_id {direction}"
        column = self.sort_column(order.attribute)
        if self.phase == "valued":
            return f" ORDER BY {column} {direction}, s.run_id {direction}"
        nulls = " NULLS LAST" if order.attribute.nullable and not order.descending else ""
        return f" ORDER BY {column} {direction}{nulls}, v.run_id {direction}"


def _selective(attr: Attribute, e: Expr) -> bool:
    """Whether a custom predicate likely matches few runs: equality or IN on a many-valued type.

    Ranges, negations, Bool, Text phrases and KeywordList members (few distinct tags) are assumed
    to match many runs; a wrong guess costs a slower plan, never a wrong answer.
    """
    many_valued = attr.type in (T.KEYWORD, T.INT, T.DOUBLE, T.DATETIME)
    equality = (isinstance(e, Comparison) and e.op == "=") or (isinstance(e, InList) and not e.negated)
    return many_valued and equality


def _param(value: Value) -> object:
    return int(value) if isinstance(value, bool) else value
