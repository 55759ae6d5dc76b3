"""The list-query language: one parser producing a typed tree, and its translators to SQL and ES DSL.

``parse_query("WorkflowType = 'Transcode' AND StartTime > '2026-11-01T00:00:00Z' ORDER BY StartTime DESC",
registry.types)`` returns a :class:`Query`; :func:`select_sql` / :func:`count_sql` turn it into a
parameterized SQLite statement, :func:`es_query` / :func:`es_sort` into Elasticsearch clauses.
"""

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
    Seek,
    StartsWith,
    Value,
    conjoin,
    text_words,
)
from cadenza.visibility.query._es import CUSTOM_FIELD, es_field, es_query, es_sort, es_value
from cadenza.visibility.query._parser import parse_query
from cadenza.visibility.query._sql import (
    SYSTEM_COLUMNS,
    VALUE_COLUMNS,
    SqlQuery,
    count_sql,
    select_sql,
    text_column_value,
)
from cadenza.visibility.query.paging import (
    DEFAULT_ORDER,
    SCAN_ORDER,
    decode_page_token,
    encode_page_token,
    next_page,
    resume,
)

__all__ = [
    "CUSTOM_FIELD",
    "DEFAULT_ORDER",
    "SCAN_ORDER",
    "SYSTEM_COLUMNS",
    "VALUE_COLUMNS",
    "And",
    "Attribute",
    "Between",
    "Comparison",
    "ComparisonOp",
    "Expr",
    "InList",
    "IsNull",
    "Or",
    "OrderBy",
    "Query",
    "Seek",
    "SqlQuery",
    "StartsWith",
    "Value",
    "conjoin",
    "count_sql",
    "decode_page_token",
    "encode_page_token",
    "es_field",
    "es_query",
    "es_sort",
    "es_value",
    "next_page",
    "parse_query",
    "resume",
    "select_sql",
    "text_column_value",
    "text_words",
]
