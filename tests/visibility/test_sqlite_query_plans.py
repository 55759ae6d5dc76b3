"""The SQLite visibility store's plans for the list page's typical queries, on a store that was never
``ANALYZE``d (as a server's is): each reads an index made for it, never every run."""

from __future__ import annotations

import uuid
from typing import Any

from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.visibility.query import DEFAULT_ORDER, Query, count_sql, select_sql
from cadenza.visibility.record import VisibilityRecord
from cadenza.visibility.sqlite_store import _COLUMNS, SqliteVisibilityStore

from .contract import run

NS = "ns-plans"
RUNS = 600


def _records() -> list[VisibilityRecord]:
    out = []
    for i in range(RUNS):
        start = 1_796_083_200_000_000 + i * 1_000_000
        out.append(
            VisibilityRecord(
                namespace_id=NS,
                workflow_id=f"wf-{i}",
                run_id=str(uuid.UUID(int=i + 1)),
                workflow_type=("Transcode", "Classify", "VideoPipeline")[i % 3],
                start_time=start,
                execution_time=start,
                status=ExecutionStatus.RUNNING if i % 2 else ExecutionStatus.COMPLETED,
                close_time=0 if i % 2 else start + 1_000_000,
                history_length=10,
                task_queue="video",
                search_attributes={"Priority": i % 11, "CustomerId": f"cust-{i % 50}"},
                task_id=i + 1,
            )
        )
    return out


def _plans(query: str) -> tuple[list[str], list[str], list[str]]:
    """The list statement's plan, the count-by-status statement's plan, and the page's run ids."""

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        store = await SqliteVisibilityStore.open(":memory:")
        try:
            await store.add_search_attributes({"Priority": "Int", "CustomerId": "Keyword"})
            await store.upsert_many(_records())
            parsed = await store.parse(query)
            listed = select_sql(Query(parsed.where, DEFAULT_ORDER), NS, columns=_COLUMNS, limit=51)
            counted = count_sql(parsed, NS, group_by_status=True)

            def plan(stmt: Any) -> list[str]:
                rows = store.conn.execute("EXPLAIN QUERY PLAN " + stmt.sql, stmt.params).fetchall()
                return [str(r[3]) for r in rows]

            page = await store.list(NS, query, 50)
            return plan(listed), plan(counted), [r.run_id for r in page[0]]
        finally:
            await store.close()

    return run(scenario())


def test_a_type_and_custom_range_filter_probes_each_run_by_its_id_in_start_order() -> None:
    query = "WorkflowType = 'Transcode' AND Priority > 7"
    listed, _, run_ids = _plans(query)
    assert any("ev_type" in step for step in listed)
    # The probe seeks (namespace, run, name); the range index would scan every run in the range.
    assert any("sa_run (namespace_id=? AND run_id=? AND name=?)" in step for step in listed), listed
    assert not any("sa_int" in step for step in listed), listed
    expected = [
        r for r in _records() if r.workflow_type == "Transcode" and r.search_attributes["Priority"] > 7
    ]
    newest = sorted(expected, key=lambda r: (r.start_time, r.run_id), reverse=True)[:50]
    assert run_ids == [r.run_id for r in newest]


def test_a_custom_range_alone_probes_too() -> None:
    listed, _, run_ids = _plans("Priority > 9")
    assert any("sa_run" in step for step in listed) and not any("sa_int" in step for step in listed)
    assert len(run_ids) == 50


def test_counts_by_status_of_one_type_read_only_their_index() -> None:
    _, counted, _ = _plans("WorkflowType = 'Transcode'")
    assert counted == ["SEARCH v USING COVERING INDEX ev_type_status (namespace_id=? AND workflow_type=?)"]


def test_a_selective_keyword_still_starts_from_its_value_index() -> None:
    listed, _, run_ids = _plans("CustomerId = 'cust-7'")
    assert any("sa_text (namespace_id=? AND name=? AND text_value=?)" in step for step in listed), listed
    assert len(run_ids) == RUNS // 50
