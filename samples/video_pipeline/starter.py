"""Uploads N videos, starts their pipelines, approves them as a reviewer, prints the results and the
history of one.

    python -m samples.video_pipeline.starter --address 127.0.0.1:7233 --count 3 --workdir ./video-work

The workers (``samples.video_pipeline.worker``) must be running against the same server and work dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import uuid
from pathlib import Path

from cadenza.client import Client, WorkflowHandle
from cadenza.ops.commands.common import print_table
from cadenza.ops.commands.history_view import event_row
from samples.video_pipeline import pipeline as p


async def run_videos(
    client: Client, workdir: Path, count: int, *, show_history: bool = True
) -> list[p.VideoResult]:
    workdir = p.configure(workdir)
    batch = uuid.uuid4().hex[:6]
    handles: list[WorkflowHandle[p.VideoResult]] = []
    for i in range(count):
        video_id = f"v{batch}-{i}"
        p.upload(video_id, watermarked=i % 2 == 0, workdir=workdir)
        handles.append(
            await client.start_workflow(
                p.VideoPipeline.run, video_id, id=f"video-{video_id}", task_queue=p.VIDEO_QUEUE
            )
        )
        print(f"uploaded {video_id}; started workflow video-{video_id}")
    await asyncio.sleep(0.3)
    print("progress of the first video:", await handles[0].query(p.VideoPipeline.progress))
    for h in handles:
        await h.signal(p.VideoPipeline.approve, "reviewer@example.com")
    results = [await h.result() for h in handles]

    print_table(
        ("VIDEO", "CATEGORY", "WATERMARK REMOVED", "REVIEWER", "RENDITIONS"),
        [(r.video_id, r.category, r.watermark_removed, r.reviewer, len(r.renditions)) for r in results],
        title="Results",
    )
    db = sqlite3.connect(p.media_db_path(workdir))
    try:
        ids = [r.video_id for r in results]
        rows = db.execute(
            f"SELECT video_id, category, links FROM videos WHERE video_id IN ({','.join('?' * len(ids))})",
            ids,
        ).fetchall()
    finally:
        db.close()
    print_table(
        ("VIDEO", "CATEGORY", "LINKS IN MEDIA DB"),
        [(v, c, len(json.loads(links))) for v, c, links in rows],
        title=f"Media DB ({p.media_db_path(workdir)})",
    )
    print(f"first output link: {results[0].renditions[0].url}")
    if show_history:
        history = await handles[0].fetch_history()
        print_table(
            ("ID", "TIME", "TYPE", "DETAILS"),
            [event_row(e) for e in history.events],
            title=f"History of {handles[0].id} ({len(history.events)} events)",
        )
    return results


async def main(address: str, namespace: str, workdir: Path, count: int) -> None:
    client = await Client.connect(address, namespace=namespace)
    await run_videos(client, workdir, count)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--address", default="127.0.0.1:7233")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--workdir", type=Path, default=Path("video-work"))
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.address, args.namespace, args.workdir, args.count))
