"""The one parser of the list-query language: recursive descent over tokens, type-checked as it goes.

Grammar (keywords are case-insensitive; attribute names are not)::

    query     := [expr] [ORDER BY name [ASC | DESC]]
    expr      := conj (OR conj)*
    conj      := primary (AND primary)*
    primary   := '(' expr ')' | predicate
    predicate := name ('=' | '!=' | '<>' | '<' | '<=' | '>' | '>=') literal
               | name [NOT] BETWEEN literal AND literal
               | name [NOT] IN '(' literal (',' literal)* ')'
               | name [NOT] STARTS_WITH string
               | name IS [NOT] NULL
    literal   := string | number | TRUE | FALSE

AND binds tighter than OR. Strings take single or double quotes, with backslash escapes or a doubled
quote; datetimes are RFC 3339 strings. Each literal is checked against the attribute's type, and
every error names the token and its position.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from cadenza.visibility._time import parse_rfc3339
from cadenza.visibility.errors import QueryError
from cadenza.visibility.query._ast import (
    And,
    Attribute,
    Between,
    Comparison,
    ComparisonOp,
    Expr,
    InList,
    IsNull,
    Or,
    OrderBy,
    Query,
    StartsWith,
    Value,
    text_words,
)
from cadenza.visibility.query._lexer import Kind, Token, tokenize
from cadenza.visibility.search_attributes import (
    SYSTEM_SEARCH_ATTRIBUTES,
    SearchAttributeType,
    unknown_attribute_message,
)

T = SearchAttributeType
_ORDERED = frozenset({T.KEYWORD, T.INT, T.DOUBLE, T.DATETIME})
# The operations each type supports, by the spelling error messages use.
_SUPPORTED: Mapping[T, tuple[str, ...]] = {
    T.KEYWORD: ("=", "!=", "<", "<=", ">", ">=", "BETWEEN", "IN", "STARTS_WITH", "IS NULL"),
    T.TEXT: ("=", "!=", "IS NULL"),
    T.INT: ("=", "!=", "<", "<=", ">", ">=", "BETWEEN", "IN", "IS NULL"),
    T.DOUBLE: ("=", "!=", "<", "<=", ">", ">=", "BETWEEN", "IN", "IS NULL"),
    T.DATETIME: ("=", "!=", "<", "<=", ">", ">=", "BETWEEN", "IN", "IS NULL"),
    T.BOOL: ("=", "!=", "IN", "IS NULL"),
    T.KEYWORD_LIST: ("=", "!=", "IN", "STARTS_WITH", "IS NULL"),
}
_STATUS_OPS = ("=", "!=", "IN")
_STATUS_NAMES = ("Running", "Completed", "Failed", "Canceled", "Terminated", "ContinuedAsNew", "TimedOut")
_INT64 = (-(2**63), 2**63 - 1)
MAX_NESTING = 64
"""Parentheses nested deeper than this are refused: the parser recurses once per level, and no
real filter needs more than a handful."""


def parse_query(query: str, types: Mapping[str, SearchAttributeType]) -> Query:
    """Parses and type-checks ``query`` against ``types`` (every attribute by name, system ones included).

    Raises :class:`~cadenza.visibility.errors.QueryError` naming the position and the token.
    """
    return _Parser(query, types).parse()


class _Parser:
    def __init__(self, query: str, types: Mapping[str, SearchAttributeType]) -> None:
        self.query = query
        self.types = types
        self.tokens = tokenize(query)
        self.i = 0
        self.depth = 0

    # -- tokens ----------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not Kind.EOF:
            self.i += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        return self.tok.kind is Kind.KEYWORD and self.tok.text in words

    def error(self, message: str, tok: Token | None = None) -> QueryError:
        tok = tok or self.tok
        return QueryError(
            message,
            query=self.query,
            position=tok.position,
            token=tok.text if tok.kind is not Kind.EOF else None,
        )

    def unexpected(self, expected: str) -> QueryError:
        tok = self.tok
        found = "end of query" if tok.kind is Kind.EOF else repr(tok.text)
        return self.error(f"expected {expected}, found {found}")

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected(word)
        return self.advance()

    def expect(self, kind: Kind) -> Token:
        if self.tok.kind is not kind:
            raise self.unexpected(kind.value)
        return self.advance()

    # -- grammar ---------------------------------------------------------------------------------

    def parse(self) -> Query:
        where: Expr | None = None
        if self.tok.kind is not Kind.EOF and not self.at_keyword("ORDER"):
            where = self.expr()
        order_by = self.order_by() if self.at_keyword("ORDER") else None
        if self.tok.kind is not Kind.EOF:
            raise self.unexpected("AND, OR, ORDER BY or end of query")
        return Query(where, order_by)

    def expr(self) -> Expr:
        operands = [self.conj()]
        while self.at_keyword("OR"):
            self.advance()
            operands.append(self.conj())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def conj(self) -> Expr:
        operands = [self.primary()]
        while self.at_keyword("AND"):
            self.advance()
            operands.append(self.primary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def primary(self) -> Expr:
        if self.tok.kind is Kind.LPAREN:
            if self.depth == MAX_NESTING:
                raise self.error(f"parentheses nested deeper than {MAX_NESTING} levels")
            self.advance()
            self.depth += 1
            inner = self.expr()
            self.depth -= 1
            self.expect(Kind.RPAREN)
            return inner
        if self.tok.kind is not Kind.IDENT:
            raise self.unexpected("a search attribute name or '('")
        return self.predicate()

    def attribute(self) -> tuple[Attribute, Token]:
        tok = self.expect(Kind.IDENT)
        type_ = self.types.get(tok.text)
        if type_ is None:
            raise self.error(unknown_attribute_message(tok.text, self.types), tok)
        return Attribute(tok.text, type_, tok.text in SYSTEM_SEARCH_ATTRIBUTES), tok

    def predicate(self) -> Expr:
        attr, name_tok = self.attribute()
        if self.tok.kind is Kind.OP:
            op_tok = self.advance()
            op: ComparisonOp = op_tok.text  # type: ignore[assignment]  # the lexer only makes these
            self.check_supported(attr, op, op_tok)
            return Comparison(attr, op, self.literal(attr))
        if self.at_keyword("IS"):
            is_tok = self.advance()
            negated = self.at_keyword("NOT")
            if negated:
                self.advance()
            self.expect_keyword("NULL")
            self.check_supported(attr, "IS NULL", is_tok)
            return IsNull(attr, negated)
        negated = self.at_keyword("NOT")
        if negated:
            self.advance()
        op_tok = self.tok
        if self.at_keyword("BETWEEN"):
            self.advance()
            self.check_supported(attr, "BETWEEN", op_tok)
            low = self.literal(attr)
            self.expect_keyword("AND")
            return Between(attr, low, self.literal(attr), negated)
        if self.at_keyword("IN"):
            self.advance()
            self.check_supported(attr, "IN", op_tok)
            self.expect(Kind.LPAREN)
            values = [self.literal(attr)]
            while self.tok.kind is Kind.COMMA:
                self.advance()
                values.append(self.literal(attr))
            self.expect(Kind.RPAREN)
            return InList(attr, tuple(dict.fromkeys(values)), negated)
        if self.at_keyword("STARTS_WITH"):
            self.advance()
            self.check_supported(attr, "STARTS_WITH", op_tok)
            tok = self.tok
            prefix = self.literal(attr)
            if not isinstance(prefix, str):  # pragma: no cover - literal() returns str for these types
                raise self.error("STARTS_WITH needs a string", tok)
            return StartsWith(attr, prefix, negated)
        expected = (
            "BETWEEN, IN or STARTS_WITH"
            if negated
            else "a comparison operator, BETWEEN, IN, STARTS_WITH or IS"
        )
        raise self.unexpected(f"{expected} after {name_tok.text}")

    def order_by(self) -> OrderBy:
        self.expect_keyword("ORDER")
        self.expect_keyword("BY")
        attr, tok = self.attribute()
        if attr.type not in _ORDERED and attr.type is not T.BOOL:
            raise self.error(
                f"cannot ORDER BY {attr.name}: {attr.type.value} attributes are not sortable", tok
            )
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().text == "DESC"
        return OrderBy(attr, descending)

    # -- type checking ---------------------------------------------------------------------------

    def check_supported(self, attr: Attribute, op: str, tok: Token) -> None:
        supported = _STATUS_OPS if attr.name == "ExecutionStatus" else _SUPPORTED[attr.type]
        if op not in supported:
            raise self.error(
                f"operator {op} is not supported for {attr.type.value} attribute {attr.name} "
                f"(supported: {', '.join(supported)})",
                tok,
            )

    def literal(self, attr: Attribute) -> Value:
        tok = self.advance()
        converter = _CONVERTERS[attr.type]
        value = converter(tok)
        if value is None:
            raise self.error(
                f"{attr.name} has type {attr.type.value}: {_describe(tok)} is not {_EXPECTED[attr.type]}", tok
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"{attr.name} has type Double: value {tok.text} is out of range", tok)
        if attr.name == "ExecutionStatus" and value not in _STATUS_NAMES:
            raise self.error(
                f"ExecutionStatus has no value {tok.value!r} (one of {', '.join(_STATUS_NAMES)})", tok
            )
        if attr.type is T.TEXT and not text_words(str(value)):
            raise self.error(f"{attr.name} has type Text: {_describe(tok)} contains no word to match", tok)
        return value


def _describe(tok: Token) -> str:
    return "end of query" if tok.kind is Kind.EOF else f"value {tok.text}"


def _string(tok: Token) -> Value | None:
    return tok.value if tok.kind is Kind.STRING else None


def _int(tok: Token) -> Value | None:
    if tok.kind is Kind.NUMBER and isinstance(tok.value, int) and _INT64[0] <= tok.value <= _INT64[1]:
        return tok.value
    return None


def _double(tok: Token) -> Value | None:
    return float(tok.value) if tok.kind is Kind.NUMBER and tok.value is not None else None


def _bool(tok: Token) -> Value | None:
    text = tok.text if tok.kind is Kind.KEYWORD else str(tok.value).upper() if tok.kind is Kind.STRING else ""
    return {"TRUE": True, "FALSE": False}.get(text)


def _datetime(tok: Token) -> Value | None:
    return parse_rfc3339(tok.value) if tok.kind is Kind.STRING and isinstance(tok.value, str) else None


_CONVERTERS: Mapping[T, Callable[[Token], Value | None]] = {
    T.KEYWORD: _string,
    T.TEXT: _string,
    T.KEYWORD_LIST: _string,
    T.INT: _int,
    T.DOUBLE: _double,
    T.BOOL: _bool,
    T.DATETIME: _datetime,
}
_EXPECTED: Mapping[T, str] = {
    T.KEYWORD: "a quoted string",
    T.TEXT: "a quoted string",
    T.KEYWORD_LIST: "a quoted string",
    T.INT: "a 64-bit integer",
    T.DOUBLE: "a number",
    T.BOOL: "true or false",
    T.DATETIME: "an RFC 3339 date-time such as '2026-11-01T00:00:00Z'",
}
