"""The video pipeline: workflow and activities.

On upload, watermark detection and classification run in parallel on the analysis team's task queue;
a detected watermark is removed; the cleaned video is transcoded into formats x bitrates x
resolutions concurrently; a reviewer approves (a signal; approved automatically after a while);
then every output link is gathered and the video's row in the SQLite media DB is updated.
``progress`` (a query) tells where a video is.

Activities simulate the work with short sleeps but write real files under the work directory
(``configure(workdir)`` sets it; each worker process calls it once).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cadenza import activity, workflow
from cadenza.common import RetryPolicy

VIDEO_QUEUE = "video"
ANALYSIS_QUEUE = "video-analysis"
"""Watermark detection and classification belong to another team, with workers of their own."""

FORMATS = ("mp4", "webm")
BITRATES_KBPS = (1500, 4000)
RESOLUTIONS = ("480p", "720p", "1080p")
REVIEW_TIMEOUT = timedelta(seconds=30)
STEP = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)

_WORKDIR = Path("video-work")


def configure(workdir: str | Path) -> Path:
    """Where uploads, outputs and the media DB live for this process's activities."""
    global _WORKDIR
    _WORKDIR = Path(workdir).resolve()
    for sub in ("uploads", "clean", "out"):
        (_WORKDIR / sub).mkdir(parents=True, exist_ok=True)
    return _WORKDIR


def media_db_path(workdir: Path | None = None) -> Path:
    return (workdir or _WORKDIR) / "media.db"


def upload(video_id: str, *, watermarked: bool, workdir: Path | None = None) -> Path:
    """Simulates a user's upload: a small source file (with a visible watermark marker if asked)."""
    path = (workdir or _WORKDIR) / "uploads" / f"{video_id}.src"
    body = hashlib.sha256(video_id.encode()).hexdigest().encode() * 64
    path.write_bytes((b"WATERMARK:acme\n" if watermarked else b"") + body)
    return path


@dataclass
class Rendition:
    fmt: str
    bitrate_kbps: int
    resolution: str
    url: str = ""
    size_bytes: int = 0


@dataclass
class Analysis:
    watermark: bool
    category: str


@dataclass
class VideoResult:
    video_id: str
    category: str
    watermark_removed: bool
    reviewer: str
    renditions: list[Rendition] = field(default_factory=list)


# -- the analysis team's activities (task queue "video-analysis") ----------------------------------------


@activity.defn
async def detect_watermark(video_id: str) -> bool:
    await asyncio.sleep(0.05)
    return (_WORKDIR / "uploads" / f"{video_id}.src").read_bytes().startswith(b"WATERMARK:")


@activity.defn
async def classify(video_id: str) -> str:
    await asyncio.sleep(0.05)
    data = (_WORKDIR / "uploads" / f"{video_id}.src").read_bytes()
    return ("sports", "music", "news", "education")[data[-1] % 4]


@activity.defn
async def remove_watermark(video_id: str) -> str:
    await asyncio.sleep(0.05)
    src = (_WORKDIR / "uploads" / f"{video_id}.src").read_bytes()
    clean = _WORKDIR / "clean" / f"{video_id}.mp4"
    clean.write_bytes(src.removeprefix(b"WATERMARK:acme\n"))
    return str(clean)


# -- the video team's activities (task queue "video") ----------------------------------------------------


@activity.defn
async def prepare_source(video_id: str) -> str:
    """Without a watermark, the upload itself is the clean source."""
    clean = _WORKDIR / "clean" / f"{video_id}.mp4"
    clean.write_bytes((_WORKDIR / "uploads" / f"{video_id}.src").read_bytes())
    return str(clean)


@activity.defn
async def transcode(video_id: str, source: str, r: Rendition) -> Rendition:
    await asyncio.sleep(0.02 + 0.01 * RESOLUTIONS.index(r.resolution))
    out_dir = _WORKDIR / "out" / video_id
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{r.resolution}-{r.bitrate_kbps}k.{r.fmt}"
    header = f"{r.fmt} {r.resolution} {r.bitrate_kbps}kbps\n".encode()
    path.write_bytes(header + Path(source).read_bytes()[: r.bitrate_kbps])
    return Rendition(r.fmt, r.bitrate_kbps, r.resolution, path.as_uri(), path.stat().st_size)


@activity.defn
def update_media_db(result: VideoResult) -> int:
    """A sync activity (the worker's thread pool): upserts the video's row, returns its link count."""
    db = sqlite3.connect(media_db_path())
    try:
        with db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS videos (video_id TEXT PRIMARY KEY, category TEXT, reviewer TEXT,"
                " watermark_removed INTEGER, links TEXT, updated_at REAL)"
            )
            db.execute(
                "INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(video_id) DO UPDATE SET"
                " category=excluded.category, reviewer=excluded.reviewer,"
                " watermark_removed=excluded.watermark_removed, links=excluded.links,"
                " updated_at=excluded.updated_at",
                (
                    result.video_id,
                    result.category,
                    result.reviewer,
                    int(result.watermark_removed),
                    json.dumps([r.url for r in result.renditions]),
                    time.time(),
                ),
            )
    finally:
        db.close()
    return len(result.renditions)


# -- the workflow ------------------------------------------------------------------------------------------


@workflow.defn
class VideoPipeline:
    def __init__(self) -> None:
        self.stage = "uploaded"
        self.transcoded = 0
        self.total = len(FORMATS) * len(BITRATES_KBPS) * len(RESOLUTIONS)
        self.reviewer: str | None = None

    @workflow.run
    async def run(self, video_id: str) -> VideoResult:
        self.stage = "analysing"
        # Two activities at once, run by the analysis team's workers.
        watermark, category = await asyncio.gather(
            workflow.execute_activity(
                detect_watermark,
                video_id,
                task_queue=ANALYSIS_QUEUE,
                start_to_close_timeout=STEP,
                retry_policy=RETRY,
            ),
            workflow.execute_activity(
                classify, video_id, task_queue=ANALYSIS_QUEUE, start_to_close_timeout=STEP, retry_policy=RETRY
            ),
        )
        self.stage = "cleaning"
        if watermark:
            source = await workflow.execute_activity(
                remove_watermark,
                video_id,
                task_queue=ANALYSIS_QUEUE,
                start_to_close_timeout=STEP,
                retry_policy=RETRY,
            )
        else:
            source = await workflow.execute_activity(
                prepare_source, video_id, start_to_close_timeout=STEP, retry_policy=RETRY
            )

        self.stage = "transcoding"

        async def one(r: Rendition) -> Rendition:
            out: Rendition = await workflow.execute_activity(
                transcode,
                video_id,
                source,
                r,
                start_to_close_timeout=STEP,
                retry_policy=RETRY,
                result_type=Rendition,
            )
            self.transcoded += 1
            return out

        wanted = [Rendition(f, b, res) for f in FORMATS for b in BITRATES_KBPS for res in RESOLUTIONS]
        renditions = await asyncio.gather(*(one(r) for r in wanted))

        self.stage = "awaiting review"
        try:
            await workflow.wait_condition(lambda: self.reviewer is not None, timeout=REVIEW_TIMEOUT)
        except TimeoutError:
            self.reviewer = "auto-approved"

        self.stage = "publishing"
        result = VideoResult(video_id, category, watermark, self.reviewer or "", list(renditions))
        await workflow.execute_activity(
            update_media_db, result, start_to_close_timeout=STEP, retry_policy=RETRY
        )
        self.stage = "done"
        return result

    @workflow.signal
    def approve(self, reviewer: str) -> None:
        self.reviewer = self.reviewer or reviewer

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "transcoded": self.transcoded,
            "total": self.total,
            "reviewer": self.reviewer,
        }
