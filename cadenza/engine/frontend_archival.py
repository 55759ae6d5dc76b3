"""The frontend's archival reads: a run's archived history, and the archived visibility records
listed with the same query language as ``ListWorkflowExecutions``. A mixin of ``Frontend`` (which
owns ``namespaces``, ``visibility`` and ``archival``, the cluster's ``ArchivalSettings``).

Listing loads the namespace's archived records into an in-memory instance of the embedded SQLite
visibility store and runs the query there: one parser and one translator for live and archived
records alike, at the price of reading every archived record of the namespace per call (as the
anchors' filestore visibility archiver does: it is the archive, not an index)."""

from __future__ import annotations

from typing import Any

from cadenza.engine.archival import ArchivalSettings, ArchiveNotFoundError, FilestoreArchiver
from cadenza.engine.archival.settings import ENABLED
from cadenza.engine.errors import FailedPreconditionError, InvalidArgumentError, WorkflowNotFoundError
from cadenza.engine.frontend_visibility import listing
from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.schemas.events import HistoryEvent
from cadenza.schemas.service import ListWorkflowExecutionsResponse, NamespaceInfo


class ArchivalOperations:
    namespaces: Any
    visibility: Any
    archival: ArchivalSettings = ArchivalSettings()

    async def _archived_namespace(self, namespace: str, kind: str) -> tuple[NamespaceInfo, str]:
        info: NamespaceInfo = await self.namespaces.get(namespace)
        provider = getattr(self.archival, kind)
        if not (provider.enabled and provider.enable_read):
            raise FailedPreconditionError(
                f"reading archived {kind} is not enabled on this cluster "
                f"(archival.{kind}.state and archival.{kind}.enableRead in the server config)"
            )
        uri = getattr(info, f"{kind}_archival_uri")
        if getattr(info, f"{kind}_archival_state") != ENABLED and not uri:
            raise FailedPreconditionError(f"namespace {namespace!r} does not archive {kind}")
        return info, uri

    async def get_archived_workflow_history(
        self, namespace: str, workflow_id: str, run_id: str
    ) -> list[HistoryEvent]:
        """The archived history of one run (a run id is required: the archive has no current run)."""
        if not run_id:
            raise InvalidArgumentError("run_id is required to read an archived history")
        info, uri = await self._archived_namespace(namespace, "history")
        try:
            return await FilestoreArchiver().read_history(uri, info.id, workflow_id, run_id)
        except ArchiveNotFoundError as e:
            raise WorkflowNotFoundError(str(e), workflow_id=workflow_id, run_id=run_id) from None

    async def list_archived_workflow_executions(
        self, namespace: str, query: str = "", page_size: int = 100, next_page_token: bytes | None = None
    ) -> ListWorkflowExecutionsResponse:
        from cadenza.visibility.errors import VisibilityError
        from cadenza.visibility.record import VisibilityRecord, decode_memo
        from cadenza.visibility.sqlite_store import SqliteVisibilityStore

        if not 1 <= page_size <= 1000:
            raise InvalidArgumentError(f"page_size must be between 1 and 1000 (got {page_size})")
        info, uri = await self._archived_namespace(namespace, "visibility")
        raw = await FilestoreArchiver().read_visibility(uri, info.id)
        scratch = await SqliteVisibilityStore.open(":memory:")
        try:
            # The cluster's custom attributes, so queries on them are typed as on live records.
            live = self.visibility
            if live is not None:
                custom = {
                    k: v
                    for k, v in (await live.get_search_attributes()).items()
                    if not scratch.registry.is_system(k)
                }
                if custom:
                    await scratch.add_search_attributes(custom)
            records = []
            for r in raw:
                try:
                    attrs = scratch.registry.decode(decode_memo(r.get("search_attributes", {})))
                except VisibilityError:
                    attrs = {}  # an attribute since removed from the cluster: the record still lists
                records.append(
                    VisibilityRecord(
                        namespace_id=r["namespace_id"],
                        workflow_id=r["workflow_id"],
                        run_id=r["run_id"],
                        workflow_type=r["workflow_type"],
                        start_time=r["start_time"],
                        execution_time=r["execution_time"],
                        close_time=r["close_time"],
                        status=ExecutionStatus(r["status"]),
                        history_length=r["history_length"],
                        task_queue=r["task_queue"],
                        search_attributes=attrs,
                        memo=decode_memo(r.get("memo", {})),
                        task_id=1,
                    )
                )
            if records:
                await scratch.upsert_many(records)
            try:
                found, nxt = await scratch.list(info.id, query, page_size, next_page_token)
            except VisibilityError as e:
                raise InvalidArgumentError(str(e)) from None
        finally:
            await scratch.close()
        return listing(found, nxt)
