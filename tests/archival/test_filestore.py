"""The filestore archiver: round trips, configured modes, atomic writes, URI checks."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from cadenza.engine.archival import ArchivalError, ArchiveNotFoundError, FilestoreArchiver, archive_dir
from cadenza.schemas.events import EventType, HistoryEvent


def events() -> list[HistoryEvent]:
    return [
        HistoryEvent(1, 1_700_000_000_000_000, EventType.WORKFLOW_EXECUTION_STARTED, 0, 5, {}),
        HistoryEvent(2, 1_700_000_000_000_001, EventType.WORKFLOW_EXECUTION_COMPLETED, 0, 6, {}),
    ]


def test_history_round_trips_with_the_configured_modes(tmp_path: Path) -> None:
    archiver = FilestoreArchiver(file_mode=0o640, dir_mode=0o710)
    uri = f"file://{tmp_path}/h"
    path = asyncio.run(archiver.archive_history(uri, "ns-id", "a/workflow id", "run-1", events()))
    back = asyncio.run(archiver.read_history(uri, "ns-id", "a/workflow id", "run-1"))
    assert [(e.event_id, e.event_type) for e in back] == [(e.event_id, e.event_type) for e in events()]
    assert path.is_relative_to(tmp_path / "h" / "ns-id") and path.name == "run-1.history"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    for d in (path.parent, path.parent.parent, tmp_path / "h"):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o710
    with pytest.raises(ArchiveNotFoundError, match="run-2"):
        asyncio.run(archiver.read_history(uri, "ns-id", "a/workflow id", "run-2"))


def test_visibility_records_are_listed_per_namespace_and_rewritten_in_place(tmp_path: Path) -> None:
    archiver = FilestoreArchiver()
    uri = f"file://{tmp_path}/v"
    for run, status in (("r1", 2), ("r2", 3), ("r1", 2)):  # r1 archived twice: a retried archive
        asyncio.run(archiver.archive_visibility(uri, {"namespace_id": "ns", "run_id": run, "status": status}))
    asyncio.run(archiver.archive_visibility(uri, {"namespace_id": "other", "run_id": "r3", "status": 2}))
    records = asyncio.run(archiver.read_visibility(uri, "ns"))
    assert sorted((r["run_id"], r["status"]) for r in records) == [("r1", 2), ("r2", 3)]
    assert asyncio.run(archiver.read_visibility(uri, "never")) == []


def test_a_failed_write_leaves_the_previous_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archiver = FilestoreArchiver()
    uri = f"file://{tmp_path}/h"
    path = asyncio.run(archiver.archive_history(uri, "ns", "wf", "run", events()))
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        asyncio.run(archiver.archive_history(uri, "ns", "wf", "run", events()[:1]))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.history"]


@pytest.mark.parametrize(
    "uri, why",
    [
        ("s3://bucket/archive", "not a file:// URI"),
        ("gs://bucket", "not a file:// URI"),
        ("file://relative/dir", "absolute path"),
        ("/no/scheme", "not a file:// URI"),
    ],
)
def test_a_uri_other_than_file_is_refused_naming_key_and_value(uri: str, why: str) -> None:
    with pytest.raises(ArchivalError, match=why) as e:
        archive_dir("history_archival_uri", uri)
    assert str(e.value).startswith("history_archival_uri: ") and repr(uri) in str(e.value)


def test_ids_cannot_leave_the_archive_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot name an archive file"):
        FilestoreArchiver.history_path(f"file://{tmp_path}", "..", "wf", "run")
