"""Workers for both task queues of the video pipeline, against a running server.

    python -m samples.video_pipeline.worker --address 127.0.0.1:7233 --workdir ./video-work

Runs until SIGINT/SIGTERM. In production the two teams would run their workers separately; one
process with two ``Worker`` objects is the same thing on a laptop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from cadenza.client import Client
from cadenza.worker import Worker
from samples.video_pipeline import pipeline as p


@contextlib.asynccontextmanager
async def running_workers(client: Client, workdir: Path) -> AsyncIterator[None]:
    p.configure(workdir)
    async with (
        Worker(
            client,
            task_queue=p.VIDEO_QUEUE,
            workflows=[p.VideoPipeline],
            activities=[p.prepare_source, p.transcode, p.update_media_db],
        ),
        Worker(
            client,
            task_queue=p.ANALYSIS_QUEUE,
            activities=[p.detect_watermark, p.classify, p.remove_watermark],
        ),
    ):
        yield


async def main(address: str, namespace: str, workdir: Path) -> None:
    client = await Client.connect(address, namespace=namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_workers(client, workdir):
        print(f"workers polling {p.VIDEO_QUEUE!r} and {p.ANALYSIS_QUEUE!r} on {address}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--address", default="127.0.0.1:7233")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--workdir", type=Path, default=Path("video-work"))
    args = parser.parse_args()
    asyncio.run(main(args.address, args.namespace, args.workdir))
