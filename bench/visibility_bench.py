"""Visibility list/count timings over a large generated population.

    python bench/visibility_bench.py [--records 100000] [--repeat 20] [--db PATH] [--es URL] [--layouts]

Loads ``--records`` runs (every custom attribute type set on most of them) into the SQLite store, and
with ``--es`` into an Elasticsearch index (dropped afterwards), then times each query of QUERIES
(first page of 100, or a count) ``--repeat`` times and prints p50/p95 in milliseconds. ``--layouts``
also times custom-attribute filters on the alternative SQLite layout (a JSON column with one
expression index per attribute) next to the typed attribute table the store uses.

Issue target: a list query over 100,000 records, p50 <= 50 ms on SQLite and on Elasticsearch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.visibility.record import VisibilityRecord
from cadenza.visibility.store import VisibilityStore

NS = "bench"
ATTRIBUTES = {
    "CustomerId": "Keyword",
    "Description": "Text",
    "Priority": "Int",
    "Score": "Double",
    "IsPremium": "Bool",
    "DueDate": "Datetime",
    "Tags": "KeywordList",
}
BASE = datetime(2026, 11, 1, tzinfo=UTC)
WORDS = ["transcode", "cleaned", "video", "audio", "track", "upload", "hdr", "1080p", "for", "the"]

# (label, kind, query): kind "list" reads the first page of 100, "deep" the 50th, "count"/"group" count.
QUERIES = [
    ("all, newest first", "list", ""),
    (
        "anchors' example",
        "list",
        "WorkflowType = 'Transcode' AND ExecutionStatus = 'Running' AND StartTime > '2026-11-10T00:00:00Z' "
        "ORDER BY StartTime DESC",
    ),
    ("one workflow id", "list", "WorkflowId = 'wf-0042424'"),
    ("custom keyword, selective", "list", "CustomerId = 'cust-00042'"),
    ("custom int, unselective", "list", "Priority > 5"),
    ("keyword list AND bool", "list", "Tags = 'hd' AND IsPremium = true"),
    ("text phrase", "list", "Description = 'cleaned video'"),
    ("datetime range", "list", "DueDate BETWEEN '2026-11-20T00:00:00Z' AND '2026-11-21T00:00:00Z'"),
    ("order by custom int", "list", "ORDER BY Priority DESC"),
    ("closed, by close time", "list", "ExecutionStatus = 'Completed' ORDER BY CloseTime DESC"),
    ("page 50 of all", "deep", ""),
    ("count running", "count", "ExecutionStatus = 'Running'"),
    ("count custom", "count", "Priority > 5 AND Tags = '4k'"),
    ("count by status", "group", ""),
]


def generate(n: int) -> list[VisibilityRecord]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        start = (
            int((BASE - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)
            + rng.randrange(30 * 86_400) * 10**6
        )
        status = rng.choice(list(ExecutionStatus) + [ExecutionStatus.RUNNING] * 4)
        attrs: dict[str, Any] = {
            "CustomerId": f"cust-{rng.randrange(5000):05d}",
            "Priority": rng.randint(-5, 10),
        }
        if rng.random() < 0.8:
            attrs["Tags"] = rng.sample(["hd", "4k", "hdr", "audio", "subtitles"], rng.randint(1, 3))
        if rng.random() < 0.7:
            attrs["IsPremium"] = rng.random() < 0.3
            attrs["Score"] = rng.randrange(400) / 4
            attrs["DueDate"] = BASE + timedelta(seconds=rng.randrange(60 * 86_400))
        if rng.random() < 0.5:
            attrs["Description"] = " ".join(rng.choice(WORDS) for _ in range(5))
        out.append(
            VisibilityRecord(
                namespace_id=NS,
                workflow_id=f"wf-{i:07d}",
                run_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                workflow_type=rng.choice(["Transcode", "Classify", "DetectWatermark", "UpdateRecord"]),
                start_time=start,
                execution_time=start,
                status=status,
                close_time=0 if status is ExecutionStatus.RUNNING else start + rng.randrange(1, 3600) * 10**6,
                history_length=rng.randint(3, 400),
                task_queue="video",
                search_attributes=attrs,
                task_id=i + 1,
            )
        )
    return out


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


async def deep_page(store: VisibilityStore, query: str, page: int) -> None:
    token = None
    for _ in range(page):
        _, token = await store.list(NS, query, 100, token)


async def run_queries(name: str, store: VisibilityStore, repeat: int) -> None:
    print(f"\n{name}: {'query':<28} {'p50 ms':>8} {'p95 ms':>8}")
    for label, kind, query in QUERIES:
        if kind == "list":
            fn: Callable[[], Awaitable[Any]] = lambda q=query: store.list(NS, q, 100)  # noqa: E731
        elif kind == "deep":
            _, tok = await store.list(NS, query, 100)
            for _ in range(48):
                _, tok = await store.list(NS, query, 100, tok)
            fn = lambda q=query, t=tok: store.list(NS, q, 100, t)  # noqa: E731  (the 50th page alone)
        elif kind == "count":
            fn = lambda q=query: store.count(NS, q)  # noqa: E731
        else:
            fn = lambda q=query: store.count_group_by_status(NS, q)  # noqa: E731
        await fn()  # warm caches once, as a long-running server would be
        p50, p95 = await timed(fn, repeat)
        print(f"{name}: {label:<28} {p50:8.1f} {p95:8.1f}")


async def load(store: VisibilityStore, records: list[VisibilityRecord], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        await store.upsert_many(records[i : i + batch])
    return time.perf_counter() - t0


def compare_layouts(db: Path, records: list[VisibilityRecord], repeat: int) -> None:
    """The JSON1 alternative: custom values in one JSON column, an expression index per attribute."""
    conn = sqlite3.connect(db)
    conn.executescript("""
        DROP TABLE IF EXISTS json_layout;
        CREATE TABLE json_layout (namespace_id TEXT, run_id TEXT, start_time INTEGER, attrs TEXT,
                                  PRIMARY KEY (namespace_id, run_id));
    """)
    conn.executemany(
        "INSERT INTO json_layout VALUES (?, ?, ?, ?)",
        [
            (
                r.namespace_id,
                r.run_id,
                r.start_time,
                json.dumps({k: v for k, v in r.search_attributes.items() if not isinstance(v, datetime)}),
            )
            for r in records
        ],
    )
    conn.execute("CREATE INDEX jl_cust ON json_layout (namespace_id, json_extract(attrs, '$.CustomerId'))")
    conn.execute(
        "CREATE INDEX jl_prio ON json_layout (namespace_id, json_extract(attrs, '$.Priority'), start_time)"
    )
    conn.commit()
    # The typed-table statements are the ones the store runs (its translator), to compare like with like.
    from cadenza.visibility.query import parse_query, resume, select_sql
    from cadenza.visibility.search_attributes import SYSTEM_SEARCH_ATTRIBUTES, SearchAttributeType

    types = {**SYSTEM_SEARCH_ATTRIBUTES, **{k: SearchAttributeType(v) for k, v in ATTRIBUTES.items()}}
    typed = {}
    for label, query in (
        ("custom keyword, selective", "CustomerId = 'cust-00042'"),
        ("custom int, unselective", "Priority > 5"),
        ("keyword list member", "Tags = 'hd'"),
    ):
        stmt = select_sql(resume(parse_query(query, types), None), NS, columns="v.run_id", limit=101)
        typed[label] = (stmt.sql, stmt.params)
    json_layout = {
        "custom keyword, selective": (
            "SELECT run_id FROM json_layout WHERE namespace_id = ?"
            " AND json_extract(attrs, '$.CustomerId') = ? "
            "ORDER BY start_time DESC, run_id DESC LIMIT 101",
            (NS, "cust-00042"),
        ),
        "custom int, unselective": (
            "SELECT run_id FROM json_layout WHERE namespace_id = ? AND json_extract(attrs, '$.Priority') > ? "
            "ORDER BY start_time DESC, run_id DESC LIMIT 101",
            (NS, 5),
        ),
        "keyword list member": (
            "SELECT run_id FROM json_layout WHERE namespace_id = ? AND EXISTS (SELECT 1 FROM "
            "json_each(attrs, '$.Tags') WHERE value = ?) ORDER BY start_time DESC, run_id DESC LIMIT 101",
            (NS, "hd"),
        ),
    }
    print(f"\nlayout: {'query':<28} {'typed table p50':>16} {'JSON1 p50':>10}  (ms)")
    for label in typed:
        out = []
        for sql, params in (typed[label], json_layout[label]):
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                conn.execute(sql, params).fetchall()
                samples.append((time.perf_counter() - t0) * 1000)
            out.append(statistics.median(samples))
        print(f"layout: {label:<28} {out[0]:16.1f} {out[1]:10.1f}")
    conn.execute("DROP TABLE json_layout")
    conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", type=Path, help="SQLite file (default: a temporary one)")
    parser.add_argument("--es", metavar="URL", help="also run against Elasticsearch at URL")
    parser.add_argument("--layouts", action="store_true", help="compare SQLite layouts for custom attributes")
    args = parser.parse_args()

    from cadenza.visibility.sqlite_store import SqliteVisibilityStore

    records = generate(args.records)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "visibility.db"
        sqlite = await SqliteVisibilityStore.open(db)
        await sqlite.add_search_attributes(ATTRIBUTES)
        seconds = await load(sqlite, records, 1000)
        await sqlite.optimize()
        print(
            f"sqlite: loaded {len(records):,} records in {seconds:.1f} s "
            f"({len(records) / seconds:,.0f}/s), {db}"
        )
        await run_queries("sqlite", sqlite, args.repeat)
        await sqlite.close()
        if args.layouts:
            compare_layouts(db, records, args.repeat)

    if args.es:
        from cadenza.visibility.es_store import ElasticsearchVisibilityStore

        es = await ElasticsearchVisibilityStore.open(
            args.es, index=f"cadenza_visibility_bench_{uuid.uuid4().hex[:8]}"
        )
        try:
            await es.add_search_attributes(ATTRIBUTES)
            seconds = await load(es, records, 2000)
            await es.refresh()
            print(
                f"\nelasticsearch: loaded {len(records):,} records in {seconds:.1f} s "
                f"({len(records) / seconds:,.0f}/s)"
            )
            await run_queries("elasticsearch", es, args.repeat)
        finally:
            await es.drop()
            await es.close()


if __name__ == "__main__":
    asyncio.run(main())
