"""The filestore archiver: archived runs as files under the directory of a ``file://`` URI.

Layout (``<dir>`` is the URI's path; ids are the namespace's id, not its name, so renaming a
namespace keeps its archive)::

    <history dir>/<namespace_id>/<sha256(workflow_id)[:16]>/<run_id>.history
    <visibility dir>/<namespace_id>/<run_id>.visibility

A history file is the run's events as one ``HistoryEventBatch`` in the project's own encoding
(Avro single-object, so a reader always knows the writer's schema version). A visibility file is
the run's closed record as JSON (payloads in base64). Every write goes to a temporary file in
the target directory and is renamed over the target, so a reader never sees half a file and an
archive retried after a crash simply replaces the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadenza.engine.archival.settings import archive_dir
from cadenza.schemas.codec import decode_events, encode_events
from cadenza.schemas.events import HistoryEvent

HISTORY_SUFFIX = ".history"
VISIBILITY_SUFFIX = ".visibility"


class ArchiveNotFoundError(LookupError):
    """The archive holds no such run."""


class FilestoreArchiver:
    def __init__(self, *, file_mode: int = 0o666, dir_mode: int = 0o766) -> None:
        self.file_mode = file_mode
        self.dir_mode = dir_mode

    # -- history -----------------------------------------------------------------------------------

    @staticmethod
    def history_path(uri: str, namespace_id: str, workflow_id: str, run_id: str) -> Path:
        # The workflow id is user text (slashes, any length): a digest keeps it a safe file name
        # while still grouping a workflow's runs together.
        digest = hashlib.sha256(workflow_id.encode()).hexdigest()[:16]
        base = archive_dir("history URI", uri)
        return base / _safe(namespace_id) / digest / f"{_safe(run_id)}{HISTORY_SUFFIX}"

    async def archive_history(
        self, uri: str, namespace_id: str, workflow_id: str, run_id: str, events: Sequence[HistoryEvent]
    ) -> Path:
        path = self.history_path(uri, namespace_id, workflow_id, run_id)
        await asyncio.to_thread(self._write, path, encode_events(events))
        return path

    async def read_history(
        self, uri: str, namespace_id: str, workflow_id: str, run_id: str
    ) -> list[HistoryEvent]:
        path = self.history_path(uri, namespace_id, workflow_id, run_id)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ArchiveNotFoundError(
                f"no archived history of workflow {workflow_id!r} run {run_id!r} under {uri}"
            ) from None
        return decode_events(data)

    # -- visibility --------------------------------------------------------------------------------

    @staticmethod
    def visibility_path(uri: str, namespace_id: str, run_id: str) -> Path:
        base = archive_dir("visibility URI", uri)
        return base / _safe(namespace_id) / f"{_safe(run_id)}{VISIBILITY_SUFFIX}"

    async def archive_visibility(self, uri: str, record: dict[str, Any]) -> Path:
        """``record``: the run's closed visibility record as JSON-safe data (``namespace_id`` and
        ``run_id`` among its keys)."""
        path = self.visibility_path(uri, record["namespace_id"], record["run_id"])
        data = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
        await asyncio.to_thread(self._write, path, data)
        return path

    async def read_visibility(self, uri: str, namespace_id: str) -> list[dict[str, Any]]:
        """Every archived record of the namespace (in no particular order)."""
        base = archive_dir("visibility URI", uri) / _safe(namespace_id)
        return await asyncio.to_thread(_read_records, base)

    # -- files -------------------------------------------------------------------------------------

    def _write(self, path: Path, data: bytes) -> None:
        self._make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=".archiving-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # mkstemp makes 0600 whatever the umask: the configured mode is set explicitly.
            os.chmod(tmp, self.file_mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _make_dirs(self, directory: Path) -> None:
        missing: list[Path] = []
        d = directory
        while not d.exists():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue  # made meanwhile by a concurrent archive
            # mkdir's mode is masked by the umask; the config's dirMode is what the operator asked for.
            os.chmod(d, self.dir_mode)


def _read_records(base: Path) -> list[dict[str, Any]]:
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not name.endswith(VISIBILITY_SUFFIX):
            continue  # a temporary file of an archive under way
        try:
            out.append(json.loads((base / name).read_bytes()))
        except FileNotFoundError:
            continue
    return out


def _safe(name: str) -> str:
    """Ids are uuids; anything that could leave the directory is refused rather than escaped."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ValueError(f"{name!r} cannot name an archive file")
    return name
