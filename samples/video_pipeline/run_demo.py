"""The main job: a dev server, the pipeline's workers and a few videos, in one command.

    python -m samples.video_pipeline.run_demo [--count 3] [--workdir DIR] [--db-filename FILE]

Starts ``cadenza server start-dev``'s server in this process on a free port (SQLite in memory
unless ``--db-filename``), connects the workers and the starter to it over gRPC, exactly as separate
processes would, runs the videos and prints their results and one workflow's history.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from cadenza.client import Client
from cadenza.ops.devserver import ServerProcess, ServerSettings
from samples.video_pipeline.starter import run_videos
from samples.video_pipeline.worker import running_workers


async def main(count: int, workdir: Path, db_filename: str) -> None:
    started = time.monotonic()
    server = ServerProcess(ServerSettings(port=0, db_filename=db_filename))
    port = await server.start()
    address = f"127.0.0.1:{port}"
    print(f"dev server serving on {address} (database: {db_filename}); work dir: {workdir}")
    client = await Client.connect(address)
    try:
        async with running_workers(client, workdir):
            await run_videos(client, workdir, count)
    finally:
        close = getattr(client.service, "close", None)
        if close is not None:
            await close()
        await server.stop()
    print(f"done: {count} videos in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--db-filename", default=":memory:")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cadenza-video-"))
    asyncio.run(main(args.count, workdir, args.db_filename))
