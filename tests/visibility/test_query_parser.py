"""The list-query parser: every operator, precedence, literals, type checks and error positions."""

from __future__ import annotations

import pytest

from cadenza.visibility.errors import QueryError
from cadenza.visibility.query import (
    And,
    Attribute,
    Between,
    Comparison,
    InList,
    IsNull,
    Or,
    OrderBy,
    Query,
    StartsWith,
    parse_query,
)
from cadenza.visibility.search_attributes import SYSTEM_SEARCH_ATTRIBUTES, SearchAttributeType

T = SearchAttributeType
TYPES = {
    **SYSTEM_SEARCH_ATTRIBUTES,
    "CustomerId": T.KEYWORD,
    "Description": T.TEXT,
    "Priority": T.INT,
    "Score": T.DOUBLE,
    "IsPremium": T.BOOL,
    "DueDate": T.DATETIME,
    "Tags": T.KEYWORD_LIST,
}
WT = Attribute("WorkflowType", T.KEYWORD, True)
STATUS = Attribute("ExecutionStatus", T.KEYWORD, True)
START = Attribute("StartTime", T.DATETIME, True)
PRIO = Attribute("Priority", T.INT, False)
SCORE = Attribute("Score", T.DOUBLE, False)
TAGS = Attribute("Tags", T.KEYWORD_LIST, False)
PREMIUM = Attribute("IsPremium", T.BOOL, False)
NOV1 = 1_793_491_200_000_000  # 2026-11-01T00:00:00Z in µs


def where(query: str) -> object:
    return parse_query(query, TYPES).where


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_every_comparison_operator(op: str) -> None:
    assert where(f"Priority {op} 3") == Comparison(PRIO, op, 3)  # type: ignore[arg-type]


def test_angle_brackets_mean_not_equal() -> None:
    assert where("Priority <> 3") == Comparison(PRIO, "!=", 3)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Priority BETWEEN 1 AND 5", Between(PRIO, 1, 5)),
        ("Priority NOT BETWEEN -1 AND 1", Between(PRIO, -1, 1, negated=True)),
        ("Tags IN ('a', 'b', 'a')", InList(TAGS, ("a", "b"))),
        ("Tags NOT IN ('a')", InList(TAGS, ("a",), negated=True)),
        ("WorkflowType STARTS_WITH 'Trans'", StartsWith(WT, "Trans")),
        ("WorkflowType NOT STARTS_WITH 'Trans'", StartsWith(WT, "Trans", negated=True)),
        ("Priority IS NULL", IsNull(PRIO)),
        ("Priority IS NOT NULL", IsNull(PRIO, negated=True)),
        ("IsPremium = true", Comparison(PREMIUM, "=", True)),
        ("IsPremium = 'FALSE'", Comparison(PREMIUM, "=", False)),
        ("Score = 2", Comparison(SCORE, "=", 2.0)),
        ("Score > -1.5e-1", Comparison(SCORE, ">", -0.15)),
        ("Priority = -9223372036854775808", Comparison(PRIO, "=", -(2**63))),
        ("StartTime > '2026-11-01T00:00:00Z'", Comparison(START, ">", NOV1)),
        ("StartTime > '2026-11-01T02:00:00.000001+02:00'", Comparison(START, ">", NOV1 + 1)),
        ("StartTime > '2026-11-01t00:00:00.1234569z'", Comparison(START, ">", NOV1 + 123_456)),
        ("ExecutionStatus IN ('Running', 'ContinuedAsNew')", InList(STATUS, ("Running", "ContinuedAsNew"))),
    ],
)
def test_predicates(query: str, expected: object) -> None:
    assert where(query) == expected


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Comparison(PRIO, "=", n) for n in (1, 2, 3))
    assert where("Priority = 1 OR Priority = 2 AND Priority = 3") == Or((a, And((b, c))))
    assert where("(Priority = 1 OR Priority = 2) AND Priority = 3") == And((Or((a, b)), c))
    assert where("Priority = 1 AND Priority = 2 OR Priority = 3") == Or((And((a, b)), c))
    assert where("((Priority = 1))") == a


def test_keywords_are_case_insensitive_names_are_not() -> None:
    q = parse_query("Priority is not null oRdEr bY StartTime desc", TYPES)
    assert q == Query(IsNull(PRIO, negated=True), OrderBy(START, descending=True))
    with pytest.raises(QueryError, match=r"unknown search attribute priority \(did you mean Priority"):
        parse_query("priority = 1", TYPES)


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("WorkflowType = 'it''s'", "it's"),
        ("WorkflowType = 'it\\'s'", "it's"),
        ('WorkflowType = "say \\"hi\\""', 'say "hi"'),
        ('WorkflowType = "a""b"', 'a"b'),
        ("WorkflowType = 'tab\\there\\nnl\\\\'", "tab\there\nnl\\"),
        ("WorkflowType = ''", ""),
        ("WorkflowType = 'ünïcødé ✓'", "ünïcødé ✓"),
    ],
)
def test_strings_and_escapes(query: str, value: str) -> None:
    assert where(query) == Comparison(WT, "=", value)


def test_order_by_forms() -> None:
    assert parse_query("ORDER BY Priority", TYPES) == Query(None, OrderBy(PRIO))
    assert parse_query("", TYPES) == Query(None)
    assert parse_query("   ", TYPES) == Query(None)
    assert parse_query("`Priority` = 1", TYPES).where == Comparison(PRIO, "=", 1)


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ("StartTime > 'yesterday'", 12, "StartTime has type Datetime: value 'yesterday' is not an RFC 3339"),
        ("StartTime > '2026-13-01T00:00:00Z'", 12, "StartTime has type Datetime"),
        ("Priority = 1.5", 11, "Priority has type Int: value 1.5 is not a 64-bit integer"),
        ("Priority = 9223372036854775808", 11, "Priority has type Int"),
        ("Priority = '1'", 11, "Priority has type Int: value '1'"),
        ("Score = 'x'", 8, "Score has type Double: value 'x' is not a number"),
        ("IsPremium = 1", 12, "IsPremium has type Bool: value 1 is not true or false"),
        ("CustomerId = 42", 13, "CustomerId has type Keyword: value 42 is not a quoted string"),
        (
            "ExecutionStatus = 'running'",
            18,
            "ExecutionStatus has no value 'running' .one of Running, Completed",
        ),
        (
            "ExecutionStatus > 'Running'",
            16,
            "operator > is not supported for Keyword attribute ExecutionStatus",
        ),
        (
            "Description > 'a'",
            12,
            "operator > is not supported for Text attribute Description .supported: =, !=, IS NULL",
        ),
        ("Description = '!!'", 14, "contains no word"),
        ("Tags BETWEEN 'a' AND 'b'", 5, "operator BETWEEN is not supported for KeywordList"),
        ("IsPremium STARTS_WITH 't'", 10, "operator STARTS_WITH is not supported for Bool"),
        ("Prio = 1", 0, "unknown search attribute Prio .did you mean Priority"),
        ("Priority = 1 AND Custmer = 'x'", 17, "unknown search attribute Custmer"),
        ("Priority = 1 AND", 16, "expected a search attribute name or '\\(', found end of query"),
        ("Priority = 1 Priority = 2", 13, "expected AND, OR, ORDER BY or end of query, found 'Priority'"),
        ("(Priority = 1", 13, "expected '\\)', found end of query"),
        (
            "Priority 1",
            9,
            "expected a comparison operator, BETWEEN, IN, STARTS_WITH or IS after Priority, found '1'",
        ),
        ("Priority NOT = 1", 13, "expected BETWEEN, IN or STARTS_WITH after Priority, found '='"),
        ("Priority IN 1", 12, "expected '\\(', found '1'"),
        ("Priority IN (1 2)", 15, "expected '\\)', found '2'"),
        ("Priority BETWEEN 1 OR 2", 19, "expected AND, found 'OR'"),
        ("Priority IS 1", 12, "expected NULL, found '1'"),
        ("WorkflowType = 'open", 15, "unterminated string"),
        ("WorkflowType = 'bad \\q'", 20, "unknown escape"),
        ("WorkflowType = 'a' ; DROP TABLE x", 19, "unexpected character ';'"),
        ("ORDER BY Description", 9, "cannot ORDER BY Description: Text attributes are not sortable"),
        ("ORDER BY Tags", 9, "cannot ORDER BY Tags: KeywordList"),
        ("ORDER BY StartTime DESC, RunId", 23, "expected AND, OR, ORDER BY or end of query, found ','"),
        ("ORDER StartTime", 6, "expected BY, found 'StartTime'"),
        ("= 1", 0, "expected a search attribute name or '\\(', found '='"),
    ],
)
def test_errors_name_token_and_position(query: str, position: int, message: str) -> None:
    with pytest.raises(QueryError, match=message) as info:
        parse_query(query, TYPES)
    assert info.value.position == position
    assert f"position {position}" in str(info.value)
    assert info.value.query == query
