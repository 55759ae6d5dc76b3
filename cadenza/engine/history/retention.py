"""Retention: a closed run's "delete history event" timer fired; archive it, then delete it.

The write that closes a run carries the timer (``shard.retention_timer``), due at the close time
plus the namespace's retention. When it fires, as the anchors do it:

1. If the namespace archives (its state is enabled and the cluster's config enables the kind),
   the run's history and its closed visibility record go to the archive at the namespace's URIs.
   Archiving is a rewrite of the same files, so an archive repeated after a crash is harmless.
2. The visibility record is deleted (a delete message with a fresh task id, so it outranks the
   close record on every store), then the run's row with its current-run pointer (only if the
   pointer still names this run: a newer run of the same id keeps it), then every branch of its
   history tree, last, because the tree is named in the timer itself: a deletion interrupted after
   the row is gone still finds the history on its retry.

Each step is idempotent, and the timer is acknowledged only when all are done (a failure retries
it). A timer whose close time no longer matches the run (the run was rebuilt and closed again,
which wrote a timer of its own) or whose run is open is dropped. A standby cluster deletes its
copy of a global namespace's run but leaves archiving to the active cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cadenza.engine.archival import ArchivalSettings, FilestoreArchiver
from cadenza.engine.archival.settings import ENABLED
from cadenza.engine.errors import NamespaceNotFoundError
from cadenza.engine.history.mutable_state import MutableState
from cadenza.engine.history.tasks import Task
from cadenza.engine.persistence.errors import EntityNotFoundError
from cadenza.schemas.events import HistoryEvent
from cadenza.schemas.service import NamespaceInfo
from cadenza.visibility.record import encode_memo

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine

log = logging.getLogger("cadenza.retention")

PublishDeleted = Callable[[str, str, str, int], Awaitable[None]]
"""Deletes a run's visibility record: ``(namespace_id, workflow_id, run_id, version)``."""


class Retention:
    def __init__(
        self,
        history: HistoryEngine,
        *,
        archival: ArchivalSettings | None = None,
        publish_deleted: PublishDeleted | None = None,
    ) -> None:
        self.history = history
        self.archival = archival or ArchivalSettings()
        self.publish_deleted = publish_deleted

    def archivers(self) -> tuple[FilestoreArchiver, FilestoreArchiver]:
        h, v = self.archival.history, self.archival.visibility
        return (
            FilestoreArchiver(file_mode=h.file_mode, dir_mode=h.dir_mode),
            FilestoreArchiver(file_mode=v.file_mode, dir_mode=v.dir_mode),
        )

    async def fire(self, task: Task) -> None:
        ns, wid, rid = task.namespace_id, task.workflow_id, task.run_id
        shard = self.history.shard(ns, wid)
        ctx = shard.run_context((ns, wid, rid))
        async with ctx.lock:
            ms: MutableState | None
            try:
                ms = await shard.load_state(ctx)
            except EntityNotFoundError:
                ms = None  # deleted already (this is a retry): finish what may be left
            if ms is not None:
                if ms.is_running or ms.info.close_time != task.args.get("c"):
                    log.info("retention timer of %s run %s is stale; dropped", wid, rid)
                    return
                if await self._archives(ns):
                    await self._archive(ns, ms, await shard.load_events(ctx))
            # The record first: once the row is gone, nothing would remember to delete it.
            if self.publish_deleted is not None:
                (version,) = await shard.allocate_task_ids(1)
                await self.publish_deleted(ns, wid, rid, version)
            await shard.stores.executions.delete_workflow_execution(shard.shard_id, ns, wid, rid)
            shard.invalidate(ctx)
            if shard.current_runs.get((ns, wid)) == rid:
                del shard.current_runs[(ns, wid)]
            tree_id = task.args.get("t") or (ms.info.tree_id if ms is not None else "")
            if tree_id:
                for branch in await shard.stores.history.get_history_tree(tree_id):
                    await shard.stores.history.delete_history_branch(tree_id, branch.branch_id)
        log.debug("retention deleted %s run %s", wid, rid)

    async def _archives(self, namespace_id: str) -> bool:
        a = self.archival
        if not (a.history.enabled or a.visibility.enabled):
            return False  # the common case: no namespace lookup at all
        info = await self._namespace(namespace_id)
        return info is not None and self._archives_here(info)

    async def _archive(self, namespace_id: str, ms: MutableState, events: list[HistoryEvent]) -> None:
        info = await self._namespace(namespace_id)
        assert info is not None
        a = self.archival
        history_archiver, visibility_archiver = self.archivers()
        i = ms.info
        if a.history.enabled and info.history_archival_state == ENABLED and info.history_archival_uri:
            await history_archiver.archive_history(
                info.history_archival_uri, namespace_id, i.workflow_id, i.run_id, events
            )
        if (
            a.visibility.enabled
            and info.visibility_archival_state == ENABLED
            and info.visibility_archival_uri
        ):
            await visibility_archiver.archive_visibility(info.visibility_archival_uri, archived_record(ms))

    async def _namespace(self, namespace_id: str) -> NamespaceInfo | None:
        registry = self.history.namespaces
        if registry is None:
            return None
        try:
            return await registry.get_by_id(namespace_id)
        except NamespaceNotFoundError:
            return None  # the namespace is gone: nothing to archive to, the run is still deleted

    def _archives_here(self, info: NamespaceInfo) -> bool:
        registry = self.history.namespaces
        if not info.is_global or registry is None:
            return True
        return info.active_cluster == registry.cluster.current_cluster_name


def archived_record(ms: MutableState) -> dict[str, Any]:
    """The run's closed visibility record as JSON-safe data (what ``wf list --archived`` reads)."""
    i = ms.info
    return {
        "namespace_id": i.namespace_id,
        "workflow_id": i.workflow_id,
        "run_id": i.run_id,
        "workflow_type": i.workflow_type,
        "task_queue": i.task_queue,
        "status": int(i.status),
        "start_time": i.start_time,
        "execution_time": i.execution_time,
        "close_time": i.close_time,
        "history_length": ms.next_event_id - 1,
        "search_attributes": encode_memo(i.search_attributes),
        "memo": encode_memo(i.memo),
    }
