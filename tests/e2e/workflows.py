"""Workflows and activities shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from cadenza import activity, workflow
from cadenza.common import RetryPolicy
from cadenza.exceptions import ApplicationError

QUICK = timedelta(seconds=10)
ANALYSIS_QUEUE = "video-analysis"
"""Watermark detection and classification belong to another team, with workers of their own."""


@activity.defn
async def say_hello(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class HelloWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(say_hello, name, start_to_close_timeout=QUICK)


# -- the video pipeline ------------------------------------------------------------------------------


@dataclass
class Rendition:
    fmt: str
    bitrate: int
    resolution: str
    url: str = ""


@dataclass
class PipelineResult:
    video_id: str
    watermark: bool
    category: str
    renditions: list[Rendition] = field(default_factory=list)


@activity.defn
async def detect_watermark(video_id: str) -> bool:
    await asyncio.sleep(0.01)
    return video_id.endswith("wm")


@activity.defn
async def classify(video_id: str) -> str:
    await asyncio.sleep(0.01)
    return "sports"


@activity.defn
def transcode(video_id: str, r: Rendition) -> Rendition:
    # A sync activity: runs on the worker's thread pool.
    return Rendition(
        r.fmt, r.bitrate, r.resolution, f"s3://videos/{video_id}/{r.resolution}-{r.bitrate}.{r.fmt}"
    )


@activity.defn
async def update_media_db(result: PipelineResult) -> int:
    return len(result.renditions)


@workflow.defn
class VideoPipeline:
    def __init__(self) -> None:
        self.stage = "new"
        self.done = 0

    @workflow.run
    async def run(self, video_id: str) -> PipelineResult:
        self.stage = "analysing"
        watermark, category = await asyncio.gather(
            workflow.execute_activity(
                detect_watermark, video_id, task_queue=ANALYSIS_QUEUE, start_to_close_timeout=QUICK
            ),
            workflow.execute_activity(
                classify, video_id, task_queue=ANALYSIS_QUEUE, start_to_close_timeout=QUICK
            ),
        )
        self.stage = "transcoding"
        wanted = [
            Rendition(fmt, bitrate, res)
            for fmt in ("mp4", "webm")
            for bitrate, res in ((800, "480p"), (2500, "720p"), (5000, "1080p"))
            for _ in (0, 1)
        ]
        # Six distinct renditions, each twice under different bitrates: 12 concurrent transcodes.
        for i, r in enumerate(wanted):
            r.bitrate += i % 2
        renditions = await asyncio.gather(
            *(
                workflow.execute_activity(
                    transcode, video_id, r, start_to_close_timeout=QUICK, result_type=Rendition
                )
                for r in wanted
            )
        )
        self.done = len(renditions)
        self.stage = "saving"
        result = PipelineResult(video_id, watermark, category, list(renditions))
        await workflow.execute_activity(update_media_db, result, start_to_close_timeout=QUICK)
        self.stage = "done"
        return result

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {"stage": self.stage, "transcoded": self.done}


# -- retries -----------------------------------------------------------------------------------------

ATTEMPTS: dict[str, int] = {}


@activity.defn
async def flaky(key: str) -> int:
    n = ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if n < 3:
        raise RuntimeError(f"transient failure {n}")
    return activity.info().attempt


@activity.defn
async def refuses(key: str) -> None:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    raise ApplicationError("card declined", "details", type="CardDeclined", non_retryable=True)


@workflow.defn
class RetryWorkflow:
    @workflow.run
    async def run(self, key: str, give_up: bool) -> int:
        policy = RetryPolicy(initial_interval=timedelta(milliseconds=10), backoff_coefficient=2.0)
        if give_up:
            await workflow.execute_activity(refuses, key, start_to_close_timeout=QUICK, retry_policy=policy)
            return -1
        return await workflow.execute_activity(flaky, key, start_to_close_timeout=QUICK, retry_policy=policy)


# -- signals, queries, timers, cancellation ------------------------------------------------------------


@workflow.defn
class Approval:
    def __init__(self) -> None:
        self.approvals: list[str] = []

    @workflow.run
    async def run(self, needed: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.approvals) >= needed)
        return self.approvals

    @workflow.signal
    def approve(self, reviewer: str) -> None:
        self.approvals.append(reviewer)

    @workflow.query
    def count(self) -> int:
        return len(self.approvals)


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, minutes: int) -> float:
        start = workflow.now()
        await asyncio.sleep(minutes * 60)
        await workflow.sleep(timedelta(minutes=minutes))
        return (workflow.now() - start).total_seconds()


@activity.defn
async def wait_forever() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.05)


@workflow.defn
class Cancellable:
    def __init__(self) -> None:
        self.cleaned = False

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                wait_forever,
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=2),
            )
        except asyncio.CancelledError:
            self.cleaned = True
            raise
        return "finished"
