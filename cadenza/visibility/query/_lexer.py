"""Tokens of the list-query language, each with its 0-based position in the query text."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from cadenza.visibility.errors import QueryError
from cadenza.visibility.search_attributes import RESERVED_WORDS


class Kind(enum.Enum):
    IDENT = "identifier"
    KEYWORD = "keyword"
    STRING = "string"
    NUMBER = "number"
    OP = "operator"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    EOF = "end of query"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    """The source text (for keywords: upper-cased, so the parser compares one spelling)."""
    value: str | int | float | None
    """The decoded string or number for STRING / NUMBER tokens."""
    position: int


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_MAX_NUMBER_LENGTH = 400
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = ("!=", "<>", ">=", "<=", "=", "<", ">")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_ESCAPE_LIST = ", ".join("\\" + e for e in _ESCAPES)


def tokenize(query: str) -> list[Token]:
    """Splits ``query`` into tokens ending with one EOF token; raises :class:`QueryError` on bad text."""
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "(),":
            kind = {"(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA}[c]
            tokens.append(Token(kind, c, None, i))
            i += 1
        elif c in "'\"":
            text, end = _string(query, i)
            tokens.append(Token(Kind.STRING, query[i:end], text, i))
            i = end
        elif c == "`":
            end = query.find("`", i + 1)
            if end < 0:
                raise QueryError("unterminated `quoted` name", query=query, position=i, token=query[i:])
            tokens.append(Token(Kind.IDENT, query[i + 1 : end], None, i))
            i = end + 1
        elif (m := _NUMBER.match(query, i)) is not None:
            text = m.group()
            if len(text) > _MAX_NUMBER_LENGTH:
                # int() refuses more than 4300 digits, and no Int or Double needs a tenth of that.
                raise QueryError(
                    f"number of {len(text)} characters (at most {_MAX_NUMBER_LENGTH})",
                    query=query,
                    position=i,
                    token=text,
                )
            value: int | float = float(text) if (m.group(1) or m.group(2)) else int(text)
            tokens.append(Token(Kind.NUMBER, text, value, i))
            i = m.end()
        elif (m := _IDENT.match(query, i)) is not None:
            text = m.group()
            if text.upper() in RESERVED_WORDS:
                tokens.append(Token(Kind.KEYWORD, text.upper(), None, i))
            else:
                tokens.append(Token(Kind.IDENT, text, None, i))
            i = m.end()
        else:
            op = next((o for o in _OPERATORS if query.startswith(o, i)), None)
            if op is None:
                raise QueryError(f"unexpected character {c!r}", query=query, position=i, token=c)
            tokens.append(Token(Kind.OP, "!=" if op == "<>" else op, None, i))
            i += len(op)
    tokens.append(Token(Kind.EOF, "", None, n))
    return tokens


def _string(query: str, start: int) -> tuple[str, int]:
    """Decodes the quoted string opening at ``start``: backslash escapes and a doubled quote."""
    quote = query[start]
    out: list[str] = []
    i = start + 1
    while i < len(query):
        c = query[i]
        if c == quote:
            if query.startswith(quote, i + 1):  # SQL style: '' inside '...' is one quote
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        if c == "\\":
            escaped = _ESCAPES.get(query[i + 1 : i + 2])
            if escaped is None:
                raise QueryError(
                    f"unknown escape {query[i : i + 2]!r} in string (use {_ESCAPE_LIST})",
                    query=query,
                    position=i,
                    token=query[i : i + 2],
                )
            out.append(escaped)
            i += 2
            continue
        out.append(c)
        i += 1
    raise QueryError("unterminated string", query=query, position=start, token=query[start:])
