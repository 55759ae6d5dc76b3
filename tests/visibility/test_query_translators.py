"""The SQL and Elasticsearch translators, and page tokens, checked on their output."""

from __future__ import annotations

import sqlite3

import pytest

from cadenza.visibility.errors import InvalidPageTokenError
from cadenza.visibility.query import (
    DEFAULT_ORDER,
    Query,
    count_sql,
    decode_page_token,
    encode_page_token,
    es_query,
    es_sort,
    parse_query,
    resume,
    select_sql,
)
from cadenza.visibility.sqlite_store import SCHEMA

from .corpus import CASES, MAIN
from .test_query_parser import TYPES

INJECTIONS = [
    "x' OR '1'='1",
    "'); DROP TABLE executions_visibility; --",
    '" OR 1=1 --',
    "a\\' OR 1=1",
    "Robert'); DELETE FROM search_attributes; --",
]


def _sql_for(query: str, token: bytes | None = None) -> tuple[str, tuple[object, ...]]:
    stmt = select_sql(resume(parse_query(query, TYPES), token), "ns'; --", columns="v.run_id", limit=10)
    return stmt.sql, stmt.params


@pytest.mark.parametrize("value", INJECTIONS)
def test_values_are_parameters_never_sql_text(value: str) -> None:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    for query in (
        f"CustomerId = '{escaped}'",
        f"WorkflowType IN ('{escaped}')",
        f"Tags STARTS_WITH '{escaped}'",
    ):
        sql, params = _sql_for(query)
        assert value in params
        assert value not in sql and "DROP" not in sql and "DELETE" not in sql
        assert sql.count("?") == len(params)


def test_every_corpus_query_translates_to_valid_parameterized_sqlite() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    token = encode_page_token(DEFAULT_ORDER, MAIN[0])
    for case in CASES:
        parsed = parse_query(case.query, TYPES)
        for stmt in (
            select_sql(resume(parsed, None), case.namespace, columns="v.run_id", limit=5),
            count_sql(parsed, case.namespace),
            count_sql(parsed, case.namespace, group_by_status=True),
        ):
            assert stmt.sql.count("?") == len(stmt.params), case.query
            for p in stmt.params:
                assert not (isinstance(p, str) and len(p) > 2 and f"'{p}'" in stmt.sql), (case.query, p)
            conn.execute(stmt.sql, stmt.params).fetchall()
        if parsed.order_by is None:
            stmt = select_sql(resume(parsed, token), case.namespace, columns="v.run_id", limit=5)
            conn.execute(stmt.sql, stmt.params).fetchall()


def test_custom_attribute_names_travel_as_parameters() -> None:
    sql, params = _sql_for("Priority > 1 ORDER BY Score DESC")
    assert "Priority" not in sql and "Score" not in sql
    assert {"Priority", "Score"} <= set(params)


def test_es_translation_of_each_operator() -> None:
    def clause(query: str) -> object:
        return es_query(parse_query(query, TYPES), "ns")["bool"]["filter"][1]

    assert clause("WorkflowType = 'T'") == {"term": {"WorkflowType": "T"}}
    assert clause("Priority >= 3") == {"range": {"search_attributes.Priority": {"gte": 3}}}
    assert clause("StartTime < '2026-11-01T00:00:00Z'") == {
        "range": {"StartTime": {"lt": "2026-11-01T00:00:00.000000Z"}}
    }
    assert clause("Score BETWEEN 1 AND 2") == {"range": {"search_attributes.Score": {"gte": 1.0, "lte": 2.0}}}
    assert clause("Tags IN ('a', 'b')") == {"terms": {"search_attributes.Tags": ["a", "b"]}}
    assert clause("CustomerId STARTS_WITH 'c'") == {
        "prefix": {"search_attributes.CustomerId": {"value": "c"}}
    }
    assert clause("Description = 'Cleaned Video'") == {
        "match_phrase": {"search_attributes.Description": "Cleaned Video"}
    }
    assert clause("CloseTime IS NULL") == {"bool": {"must_not": [{"exists": {"field": "CloseTime"}}]}}
    assert clause("Priority IS NOT NULL") == {"exists": {"field": "search_attributes.Priority"}}
    assert clause("Tags != 'a'") == {
        "bool": {
            "filter": [{"exists": {"field": "search_attributes.Tags"}}],
            "must_not": [{"term": {"search_attributes.Tags": "a"}}],
        }
    }
    assert clause("Priority = 1 OR IsPremium = true") == {
        "bool": {
            "should": [
                {"term": {"search_attributes.Priority": 1}},
                {"term": {"search_attributes.IsPremium": True}},
            ],
            "minimum_should_match": 1,
        }
    }
    assert es_query(Query(None), "ns") == {"bool": {"filter": [{"term": {"NamespaceId": "ns"}}]}}


def test_es_sort_puts_missing_values_last_and_breaks_ties_by_run_id() -> None:
    order = parse_query("ORDER BY Priority DESC", TYPES).order_by
    assert order is not None
    assert es_sort(order) == [
        {"search_attributes.Priority": {"order": "desc", "missing": "_last"}},
        {"RunId": {"order": "desc"}},
    ]


def test_page_tokens_are_opaque_and_bound_to_their_order() -> None:
    token = encode_page_token(DEFAULT_ORDER, MAIN[3])
    assert MAIN[3].run_id.encode() not in token  # opaque to callers, not a readable cursor
    seek = decode_page_token(token, DEFAULT_ORDER)
    assert (seek.value, seek.run_id, seek.descending) == (MAIN[3].start_time, MAIN[3].run_id, True)
    other = parse_query("ORDER BY StartTime ASC", TYPES).order_by
    assert other is not None
    with pytest.raises(
        InvalidPageTokenError, match="continues ORDER BY StartTime DESC, not ORDER BY StartTime ASC"
    ):
        decode_page_token(token, other)
    for garbage in (b"", b"!!!", b"eyJ2IjoyfQ==", b"bm90IGpzb24="):
        with pytest.raises(InvalidPageTokenError):
            decode_page_token(garbage or b"=", DEFAULT_ORDER)
