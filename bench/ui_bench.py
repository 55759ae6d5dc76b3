"""The web UI's workflow list over a namespace of 100,000 runs: server time per request.

    python bench/ui_bench.py [--records 100000] [--repeat 20] [--drop-index NAME]

Starts a server (embedded SQLite, visibility in a SQLite file) with its web UI, writes
``--records`` visibility records of the ``default`` namespace straight into the visibility store
(through its ``upsert_many``, not by running workflows), then asks the UI's JSON API what the list
page asks: the first page of 50 runs, the same with a status filter, a query on a search attribute,
the counts by status, and the 20th page. Each request's server time is read from its
``Server-Timing`` header (the UI's own measure, from request to response, without the network or
the browser); p50 and p95 in milliseconds are printed.

``--drop-index NAME`` drops one of the visibility store's indexes before the load, to measure what
it costs the writes (the load rate) and gains the reads.

Issue target: the list page of a namespace with 100,000 runs answers in <= 300 ms server time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.ops.devserver import ServerProcess, ServerSettings
from cadenza.ui import UISettings
from cadenza.visibility.record import VisibilityRecord

BASE_US = 1_796_083_200_000_000  # 2026-12-01T00:00:00Z
LIST = "/api/v1/namespaces/default/workflows"
COUNTS = "/api/v1/namespaces/default/workflow-counts"


def generate(namespace_id: str, n: int) -> list[VisibilityRecord]:
    rng = random.Random(16)
    out = []
    for i in range(n):
        start = BASE_US + rng.randrange(30 * 86_400) * 10**6
        status = rng.choice(list(ExecutionStatus) + [ExecutionStatus.RUNNING] * 4)
        out.append(
            VisibilityRecord(
                namespace_id=namespace_id,
                workflow_id=f"video-{i:07d}",
                run_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                workflow_type=rng.choice(["VideoPipeline", "Transcode", "Classify"]),
                start_time=start,
                execution_time=start,
                status=status,
                close_time=0 if status is ExecutionStatus.RUNNING else start + rng.randrange(1, 3600) * 10**6,
                history_length=rng.randint(3, 400),
                task_queue="video",
                search_attributes={
                    "CustomKeywordField": f"cust-{rng.randrange(5000):05d}",
                    "CustomIntField": rng.randint(0, 10),
                },
                task_id=i + 1,
            )
        )
    return out


async def server_ms(http: aiohttp.ClientSession, url: str, params: dict[str, str]) -> tuple[float, Any]:
    async with http.get(url, params=params) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise SystemExit(f"{url} {params}: HTTP {resp.status}: {body}")
        timing = resp.headers["Server-Timing"]
        return float(timing.partition("dur=")[2]), body


def quantiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


async def main(records: int, repeat: int, drop_index: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(ServerSettings(port=0, db_filename=f"{tmp}/cadenza.db", ui=UISettings(port=0)))
        await server.start()
        try:
            assert server.host is not None
            ns_id = (await server.host.namespaces.get("default")).id
            store = server.host.frontend.visibility
            if drop_index:
                await store._run(store.conn.execute, f"DROP INDEX {drop_index}")
            t0 = time.perf_counter()
            batch = generate(ns_id, records)
            for i in range(0, len(batch), 5000):
                await store.upsert_many(batch[i : i + 5000])
            seconds = time.perf_counter() - t0
            print(f"wrote {records:,} visibility records in {seconds:.1f} s ({records / seconds:,.0f}/s)")
            url = server.ui.url
            async with aiohttp.ClientSession() as http:
                _, first = await server_ms(http, url + COUNTS, {})
                assert first["count"] == records, first
                token = None
                for _ in range(19):
                    params = {"page_size": "50", **({"next_page_token": token} if token else {})}
                    _, page = await server_ms(http, url + LIST, params)
                    token = page["next_page_token"]
                cases: list[tuple[str, str, dict[str, str]]] = [
                    ("list: first page of 50, newest first", LIST, {"page_size": "50"}),
                    ("list: status filter Running", LIST, {"query": "ExecutionStatus = 'Running'"}),
                    (
                        "list: type and search attribute",
                        LIST,
                        {"query": "WorkflowType = 'Transcode' AND CustomIntField > 7"},
                    ),
                    ("list: search attribute range", LIST, {"query": "CustomIntField > 7"}),
                    ("list: type", LIST, {"query": "WorkflowType = 'Transcode'"}),
                    ("counts: type", COUNTS, {"query": "WorkflowType = 'Transcode'"}),
                    (
                        "counts: type and search attribute",
                        COUNTS,
                        {"query": "WorkflowType = 'Transcode' AND CustomIntField > 7"},
                    ),
                    ("list: page 20", LIST, {"page_size": "50", "next_page_token": token or ""}),
                    ("counts by status (all runs)", COUNTS, {}),
                ]
                print(f"\n{'request':<40} {'p50 ms':>8} {'p95 ms':>8}")
                for label, path, params in cases:
                    samples = [(await server_ms(http, url + path, params))[0] for _ in range(repeat)]
                    p50, p95 = quantiles(samples)
                    print(f"{label:<40} {p50:>8.1f} {p95:>8.1f}")
                # The page asks for both at once: its server time is the longer of the two.
                page_samples = []
                for _ in range(repeat):
                    (a, _), (b, _) = await asyncio.gather(
                        server_ms(http, url + LIST, {"page_size": "50"}), server_ms(http, url + COUNTS, {})
                    )
                    page_samples.append(max(a, b))
                p50, p95 = quantiles(page_samples)
                print(f"{'list page (list + counts, concurrently)':<40} {p50:>8.1f} {p95:>8.1f}")
        finally:
            await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--drop-index", default=None, help="a visibility index to drop before the load")
    args = parser.parse_args()
    asyncio.run(main(args.records, args.repeat, args.drop_index))
