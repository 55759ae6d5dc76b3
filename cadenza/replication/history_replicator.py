"""Applying another cluster's history batch to a run (the standby side of replication, and NDC).

A batch ``first..last`` arrives with the sender's version history ``H`` up to ``last``. Against the
run's branches here (``version_history.py`` tabulates the cases):

* no run yet: ``first`` must be 1 (else the missing events are fetched from the source first); the
  run is created from the batch, its mutable state folded from the events;
* ``H``'s last item is on a local branch: a duplicate or older delivery, dropped;
* the batch extends the current branch: appended;
* events are missing before it: ``MissingHistoryError`` names the range; the applier fetches it
  from the source cluster, applies it, and retries the batch;
* it diverges from every local branch (two clusters both wrote after a split-brain): a new branch is
  made from the common prefix plus the batch. The branch whose last version is highest is the
  run's current branch; mutable state is rebuilt from it when that changes. The losing branch is
  kept (readable with ``wf show --branch``).

Nothing external is lost in a conflict: the cluster active for the namespace re-applies, on the
winning branch, every signal, cancel request and termination that only a losing branch has
(``reapply_from_loser``), each once (its origin, version and event id, is remembered in the run's
request ids). Only the active cluster does it, because it sees both branches in any case: its own
writes, and every other cluster's through their topics.

A batch is written byte for byte as the source encoded it, in one conditional write with the run's
new state, so a crash leaves either the batch and its state or neither.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cadenza.engine.bus.messages import SyncActivity
from cadenza.engine.history.mutable_state import MutableState
from cadenza.engine.history.mutation import Mutation, close_run
from cadenza.engine.history.task_refresher import refresh_tasks
from cadenza.engine.history.tasks import MutationTasks, Task, VisibilityKind
from cadenza.engine.persistence.errors import EntityNotFoundError
from cadenza.engine.persistence.protocols import (
    CreateMode,
    CurrentExecution,
    ExecutionState,
    HistoryAppend,
    HistoryNode,
)
from cadenza.replication.current_run import (
    SUPERSEDED_IDENTITY,
    CreatePlan,
    decide_create,
    superseded_reason,
)
from cadenza.replication.reapply import REAPPLIED_EVENT_TYPES, Reapplier, read_events
from cadenza.replication.version_history import (
    VersionHistories,
    VersionHistory,
    VersionHistoryError,
    VersionHistoryItem,
    compare_for_winner,
    is_lca_appendable,
)
from cadenza.schemas.codec import decode_events, encode_events
from cadenza.schemas.events import CLOSE_EVENT_TYPES, EventType, HistoryEvent
from cadenza.schemas.ids import new_id

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine
    from cadenza.engine.history.shard import RunContext, ShardContext

log = logging.getLogger("cadenza.replication")


class ReplicationError(Exception):
    """A batch cannot be applied now; retrying later may succeed (the runner backs off)."""


class InvalidBatchError(ValueError):
    """A batch that can never be applied (the message names why): it goes to the DLQ."""


class MissingHistoryError(ReplicationError):
    """Events ``from_event_id .. to_event_id - 1`` of the run must be fetched from the source."""

    def __init__(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        from_event_id: int,
        to_event_id: int,
        to_event_version: int = 0,
    ):
        super().__init__(
            f"workflow {workflow_id!r} run {run_id}: events {from_event_id}..{to_event_id - 1} are missing "
            "here"
        )
        self.namespace_id = namespace_id
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.from_event_id = from_event_id
        self.to_event_id = to_event_id
        self.to_event_version = to_event_version
        """The version of event ``to_event_id - 1`` in the batch that found the gap: which of the
        source's branches to read (0: its current one)."""


@dataclass(slots=True, frozen=True)
class Batch:
    namespace_id: str
    workflow_id: str
    run_id: str
    version_history: VersionHistory
    events: list[HistoryEvent]
    blob: bytes
    """The events exactly as the source encoded them."""

    @classmethod
    def decode(
        cls,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        first_event_id: int,
        next_event_id: int,
        version_history: Sequence[object],
        blob: bytes | None,
    ) -> Batch:
        """Checks a batch before anything is applied; ``InvalidBatchError`` names what is wrong."""
        where = f"workflow {workflow_id!r} run {run_id!r}"
        if not workflow_id or not run_id:
            raise InvalidBatchError(f"history batch without a workflow or run id ({where})")
        if blob is None:
            raise InvalidBatchError(
                f"{where}: history batch {first_event_id}..{next_event_id - 1} has no events"
            )
        try:
            events = decode_events(blob)
        except Exception as exc:
            raise InvalidBatchError(f"{where}: the events of the batch do not decode: {exc}") from None
        ids = [e.event_id for e in events]
        if not events or ids != list(range(first_event_id, next_event_id)):
            raise InvalidBatchError(
                f"{where}: batch says events {first_event_id}..{next_event_id - 1} but holds "
                f"{ids[:3]}{'...' if len(ids) > 3 else ''} ({len(ids)} events)"
            )
        try:
            vh = VersionHistory("", list(version_history))  # type: ignore[arg-type]
        except VersionHistoryError as exc:
            raise InvalidBatchError(f"{where}: {exc}") from None
        if vh.is_empty() or vh.last_item().event_id != events[-1].event_id:
            raise InvalidBatchError(
                f"{where}: the version history {vh.to_list()} does not end at the batch's last event "
                f"{events[-1].event_id}"
            )
        if first_event_id == 1 and events[0].event_type != EventType.WORKFLOW_EXECUTION_STARTED:
            raise InvalidBatchError(
                f"{where}: a run's first batch must begin with WorkflowExecutionStarted, not "
                f"{events[0].event_type.name}"
            )
        for e in events:
            if vh.event_version(e.event_id) != e.version:
                raise InvalidBatchError(
                    f"{where}: event {e.event_id} has version {e.version} but the version history "
                    f"says {vh.event_version(e.event_id)}"
                )
        return cls(namespace_id, workflow_id, run_id, vh, events, blob)

    @property
    def first_event_id(self) -> int:
        return self.events[0].event_id

    def tail_after(self, event_id: int) -> Batch:
        """The part of the batch after ``event_id`` (a resent range may overlap what is here)."""
        kept = [e for e in self.events if e.event_id > event_id]
        return Batch(
            self.namespace_id,
            self.workflow_id,
            self.run_id,
            self.version_history,
            kept,
            encode_events(kept),
        )


class HistoryReplicator:
    def __init__(self, engine: HistoryEngine, *, cluster_name: str) -> None:
        self.engine = engine
        self.cluster_name = cluster_name
        self.reapplier = Reapplier(engine)

    async def apply(self, batch: Batch) -> str:
        """Applies one batch; returns what happened ("created", "appended", "duplicate", "forked",
        "switched"). Raises ``MissingHistoryError`` for a gap, ``ReplicationError`` to retry."""
        engine = self.engine
        from cadenza.engine.errors import NamespaceNotFoundError

        try:
            await engine.ensure_namespace(batch.namespace_id)
        except NamespaceNotFoundError:
            raise ReplicationError(
                f"namespace id {batch.namespace_id} is not known here yet (its registration may still "
                "be on its way)"
            ) from None
        if not self._replicated_here(batch.namespace_id):
            return "skipped"  # every cluster reads the topic; this namespace does not list us
        shard = engine.shard(batch.namespace_id, batch.workflow_id)
        ctx = shard.run_context((batch.namespace_id, batch.workflow_id, batch.run_id))
        reapply: list[HistoryEvent] = []
        was_active = self._active_for(batch.namespace_id)
        if was_active and _unwritten(ctx):
            # Where the namespace is active a run's in-memory change (a started workflow task, a
            # held completion) must be written before a batch from elsewhere can be compared with
            # it (``_settle``). Waiting for the run's own next write could outlast the applier's
            # retries and send the batch to the DLQ, and every later batch of the run after it.
            await engine.write_unwritten(batch.namespace_id, batch.workflow_id, batch.run_id)
        async with ctx.lock:
            try:
                ms = await shard.load_state(ctx)
            except EntityNotFoundError:
                ms = None
            carry: list[tuple[str, list[HistoryEvent]]] = []
            """Runs that are not current here, with events whose signals belong on the current run."""
            if ms is None:
                outcome = await self._create(shard, ctx, batch, carry)
            else:
                ms = await self._settle(shard, ctx, ms)
                zombie = ms.info.state == ExecutionState.ZOMBIE  # before the batch may close it
                outcome, reapply = await self._apply_to_run(shard, ctx, ms, batch)
                if zombie:
                    carry.append((batch.run_id, batch.events))
        if not was_active and self._active_for(batch.namespace_id) and outcome != "duplicate":
            # The namespace failed over to this cluster while the batch was being written: its
            # take-over may have scanned the shard before the write committed, and the write
            # carried no tasks. Give the run its tasks now (a duplicate does no harm).
            await engine.mutate(batch.namespace_id, batch.workflow_id, batch.run_id, refresh_tasks)
        if (reapply or outcome in ("duplicate", "forked", "switched")) and self._active_for(
            batch.namespace_id
        ):
            # Also for a duplicate: a re-application that failed after the losing branch was
            # stored (the namespace failed over meanwhile) is made when the batch comes again.
            await self.reapplier.reapply_losing_branches(batch.namespace_id, batch.workflow_id, batch.run_id)
        if carry and self._active_for(batch.namespace_id):
            for from_run, events in carry:
                await self.reapplier.reapply_from_other_run(
                    batch.namespace_id, batch.workflow_id, from_run, events
                )
        return outcome

    async def sync_activity(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        version_history: Sequence[object],
        sync: SyncActivity,
    ) -> str:
        """Takes over a pending activity's attempt, start and heartbeat from the active cluster,
        so after a failover it resumes from its last heartbeat. Returns "synced", or "stale" when
        this cluster knows better (the activity finished, or the sync is older)."""
        from cadenza.engine.errors import NamespaceNotFoundError
        from cadenza.replication.publisher import decode_plain

        try:
            await self.engine.ensure_namespace(namespace_id)
        except NamespaceNotFoundError:
            raise ReplicationError(f"namespace id {namespace_id} is not known here yet") from None
        if not self._replicated_here(namespace_id):
            return "skipped"
        try:
            incoming = VersionHistory("", list(version_history))  # type: ignore[arg-type]
            details = decode_plain(sync.details)
            last_failure = decode_plain(sync.last_failure)
        except Exception as e:
            raise InvalidBatchError(
                f"workflow {workflow_id!r} run {run_id}: bad activity sync: {e}"
            ) from None
        s = sync.scheduled_event_id
        shard = self.engine.shard(namespace_id, workflow_id)
        ctx = shard.run_context((namespace_id, workflow_id, run_id))
        async with ctx.lock:
            try:
                ms = await shard.load_state(ctx)
            except EntityNotFoundError:
                raise ReplicationError(f"workflow {workflow_id!r} run {run_id} is not here yet") from None
            if s >= ms.next_event_id:
                raise ReplicationError(
                    f"workflow {workflow_id!r} run {run_id}: activity {s} is not scheduled here yet"
                )
            local = VersionHistory.from_list(ms.version_history, ms.info.branch_id)
            if incoming.is_empty() or s > incoming.last_event_id():
                raise InvalidBatchError(
                    f"workflow {workflow_id!r} run {run_id}: activity sync for event {s} outside its "
                    f"version history {incoming.to_list()}"
                )
            info = ms.activities.get(s)
            if (
                info is None
                or local.event_version(s) != incoming.event_version(s)
                or (sync.attempt, sync.last_heartbeat_time, sync.started_time)
                <= (info.attempt, info.last_heartbeat_time, info.started_time)
            ):
                return "stale"
            ms = await self._settle(shard, ctx, ms)
            info = ms.activities.get(s)
            if info is None:
                return "stale"
            info.attempt = sync.attempt
            info.scheduled_time = sync.scheduled_time
            info.started_time = sync.started_time
            info.started_identity = sync.last_worker_identity
            info.last_heartbeat_time = sync.last_heartbeat_time
            info.heartbeat_details = details
            info.last_failure = last_failure
            await shard.update_run(ctx, ms, MutationTasks())
        return "synced"

    # -- a new run -------------------------------------------------------------------------------

    async def _create(
        self,
        shard: ShardContext,
        ctx: RunContext,
        batch: Batch,
        carry: list[tuple[str, list[HistoryEvent]]],
    ) -> str:
        if batch.first_event_id != 1:
            raise MissingHistoryError(
                batch.namespace_id,
                batch.workflow_id,
                batch.run_id,
                1,
                batch.first_event_id,
                batch.version_history.event_version(batch.first_event_id - 1),
            )
        ms = MutableState.rebuild(batch.namespace_id, batch.workflow_id, batch.run_id, batch.events)
        ms.info.tree_id = batch.run_id
        ms.info.branch_id = new_id()
        ms.pending_events = list(batch.events)
        try:
            cur: CurrentExecution | None = await shard.stores.executions.get_current_execution(
                shard.shard_id, batch.namespace_id, batch.workflow_id
            )
        except EntityNotFoundError:
            cur = None
        decision = decide_create(cur, batch.run_id, batch.events[-1].version)
        mode, previous_run_id, previous_version = CreateMode.BRAND_NEW, "", 0
        if decision.plan is CreatePlan.WAIT:
            assert cur is not None
            raise ReplicationError(
                f"workflow {batch.workflow_id!r}: run {batch.run_id} arrived while run {cur.run_id} "
                "is still open here; waiting for that run's close to arrive"
            )
        if decision.plan is CreatePlan.ZOMBIE:
            mode = CreateMode.ZOMBIE
            if ms.is_running:
                ms.info.state = ExecutionState.ZOMBIE
        elif cur is not None:
            previous_run_id, previous_version = cur.run_id, cur.last_write_version
            if decision.plan is CreatePlan.SUPPRESS_CURRENT:
                previous_version = await self._suppress(shard, cur.run_id, batch)
                _, _, superseded = await self.engine.get_state_and_events(
                    batch.namespace_id, batch.workflow_id, cur.run_id
                )
                carry.append((cur.run_id, list(superseded)))
            mode = CreateMode.WORKFLOW_ID_REUSE
        await shard.create_run(
            ctx,
            ms,
            self._tasks(ms, batch.events),
            mode=mode,
            previous_run_id=previous_run_id,
            previous_last_write_version=previous_version,
            replicated_blob=batch.blob,
        )
        if cur is not None and mode == CreateMode.ZOMBIE:
            carry.append((batch.run_id, batch.events))
            log.info(
                "workflow %s: run %s (version %d) kept as a zombie beside the current run %s (version %d)",
                batch.workflow_id,
                batch.run_id,
                batch.events[-1].version,
                cur.run_id,
                cur.last_write_version,
            )
        return "created"

    async def _suppress(self, shard: ShardContext, run_id: str, newer: Batch) -> int:
        """Closes the open current run ``run_id`` that ``newer`` supersedes (see ``current_run``):
        terminated here if this cluster wrote its last version, else made a zombie until its own
        cluster's termination arrives. Returns its last write version after the change."""
        ctx = shard.run_context((newer.namespace_id, newer.workflow_id, run_id))
        async with ctx.lock:
            ms = await self._settle(shard, ctx, await shard.load_state(ctx))
            if not ms.is_running:
                return ms.info.last_write_version
            version = ms.info.last_write_version
            writer = self._cluster_for_version(version)
            if writer == self.cluster_name:
                ms.current_version = version
                m = Mutation(ms, MutationTasks(), self.engine.clock.now_us())
                close_run(
                    m,
                    EventType.WORKFLOW_EXECUTION_TERMINATED,
                    {
                        "reason": superseded_reason(newer.run_id, newer.events[-1].version),
                        "details": None,
                        "identity": SUPERSEDED_IDENTITY,
                    },
                )
                await shard.update_run(ctx, ms, m.tasks)
                how = "terminated"
            else:
                ms.info.state = ExecutionState.ZOMBIE
                await shard.update_run(ctx, ms, MutationTasks())
                how = f"made a zombie until cluster {writer!r} terminates it"
            log.info(
                "workflow %s: run %s (version %d) superseded by run %s (version %d): %s",
                newer.workflow_id,
                run_id,
                version,
                newer.run_id,
                newer.events[-1].version,
                how,
            )
            return ms.info.last_write_version

    # -- an existing run -------------------------------------------------------------------------

    async def _apply_to_run(
        self, shard: ShardContext, ctx: RunContext, ms: MutableState, batch: Batch
    ) -> tuple[str, list[HistoryEvent]]:
        histories = _histories(ms)
        incoming = batch.version_history
        try:
            histories.find_first_index_containing(incoming.last_item())
            return "duplicate", []
        except VersionHistoryError:
            pass
        try:
            index, lca = histories.find_lca(incoming)
        except VersionHistoryError as e:
            raise InvalidBatchError(f"workflow {batch.workflow_id!r} run {batch.run_id}: {e}") from None
        if batch.first_event_id > lca.event_id + 1:
            raise MissingHistoryError(
                batch.namespace_id,
                batch.workflow_id,
                batch.run_id,
                lca.event_id + 1,
                batch.first_event_id,
                batch.version_history.event_version(batch.first_event_id - 1),
            )
        if batch.first_event_id <= lca.event_id:
            batch = batch.tail_after(lca.event_id)
        branch = histories.histories[index]
        if is_lca_appendable(branch, lca) and index == histories.current_index:
            await self._append(shard, ctx, ms, batch)
            return "appended", []
        return await self._fork(shard, ctx, ms, histories, index, lca, batch)

    async def _append(self, shard: ShardContext, ctx: RunContext, ms: MutableState, batch: Batch) -> None:
        for e in batch.events:
            ms.next_event_id = e.event_id + 1
            ms.current_version = e.version
            ms.apply(e)
        ms.pending_events = list(batch.events)
        await shard.update_run(ctx, ms, self._tasks(ms, batch.events), replicated_blob=batch.blob)

    async def _fork(
        self,
        shard: ShardContext,
        ctx: RunContext,
        ms: MutableState,
        histories: VersionHistories,
        base_index: int,
        lca: VersionHistoryItem,
        batch: Batch,
    ) -> tuple[str, list[HistoryEvent]]:
        """The batch continues branch ``base_index`` after ``lca_event_id`` in a way no local branch
        does: a new branch (or the continuation of a losing one) that may win."""
        stores = shard.stores
        lca_event_id = lca.event_id
        base = histories.histories[base_index]
        tree_id = ms.info.tree_id
        prefix = await read_events(shard, tree_id, base.branch_id, lca_event_id + 1)
        if base_index != histories.current_index and is_lca_appendable(base, lca):
            # The batch extends a losing branch as it is: write to that branch.
            new_branch_id = base.branch_id
            new_vh = base.copy()
        else:
            new_branch_id = new_id()
            new_vh = base.copy_until(lca)
            if prefix:
                await stores.history.append_history_nodes(
                    HistoryAppend(
                        tree_id,
                        new_branch_id,
                        HistoryNode(
                            1, (await shard.allocate_task_ids(1))[0], encode_events(prefix), len(prefix)
                        ),
                        is_new_branch=True,
                    )
                )
        for e in batch.events:
            new_vh.add_or_update(e.event_id, e.version)
        new_vh.branch_id = new_branch_id
        current = histories.current()
        loser_events: list[HistoryEvent]
        if compare_for_winner(new_vh, current) > 0:
            # The incoming branch wins: the run now follows it. Its state is folded from it, the
            # old current branch is kept, and what only the old branch had is re-applied.
            old_events = await read_events(shard, tree_id, current.branch_id, ms.next_event_id)
            loser_events = [e for e in old_events if e.event_id > lca_event_id]
            new_ms = MutableState.rebuild(ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id, prefix)
            for e in batch.events:
                new_ms.next_event_id = e.event_id + 1
                new_ms.current_version = e.version
                new_ms.apply(e)
            new_ms.info.tree_id = tree_id
            new_ms.info.branch_id = new_branch_id
            new_ms.info.history_size_bytes = 0
            new_ms.db_version = ms.db_version
            new_ms.signal_request_ids = set(ms.signal_request_ids)
            new_ms.branches = [
                (h.branch_id, h.to_list()) for h in histories.histories if h.branch_id != new_branch_id
            ]
            new_ms.pending_events = list(batch.events)
            if ms.info.state == ExecutionState.ZOMBIE and new_ms.is_running:
                new_ms.info.state = ExecutionState.ZOMBIE  # still not the current run of its id
            shard.invalidate(ctx)  # in-memory starts of the old branch are void
            ctx.state = new_ms
            await shard.update_run(
                ctx, new_ms, _visibility_tasks(new_ms, batch.events, always=True), replicated_blob=batch.blob
            )
            ctx.events = None
            log.info(
                "workflow %s run %s: branch %s (last version %d) replaces branch %s (last version %d)",
                ms.info.workflow_id,
                ms.info.run_id,
                new_branch_id,
                new_vh.last_item().version,
                current.branch_id,
                current.last_item().version,
            )
            outcome = "switched"
        else:
            # The incoming branch loses: keep it beside the current one.
            await stores.history.append_history_nodes(
                HistoryAppend(
                    tree_id,
                    new_branch_id,
                    HistoryNode(
                        batch.first_event_id,
                        (await shard.allocate_task_ids(1))[0],
                        batch.blob,
                        len(batch.events),
                    ),
                    is_new_branch=new_branch_id != base.branch_id and not prefix,
                )
            )
            ms.branches = [(b, items) for b, items in ms.branches if b != new_branch_id]
            ms.branches.append((new_branch_id, new_vh.to_list()))
            await shard.update_run(ctx, ms, MutationTasks())
            loser_events = [e for e in prefix if e.event_id > lca_event_id] + batch.events
            outcome = "forked"
        reapply = [e for e in loser_events if e.event_type in REAPPLIED_EVENT_TYPES]
        if reapply and not self._active_for(ms.info.namespace_id):
            reapply = []  # the active cluster re-applies them; it sees this branch too
        return outcome, reapply

    async def _settle(self, shard: ShardContext, ctx: RunContext, ms: MutableState) -> MutableState:
        """The run's state without changes that live only in memory (a speculative start, a held
        completion). Where the namespace is active they are written within a second: retry after
        them. Where it is not (it failed over away) they can never be written: drop them (their
        tasks are offered again and refused) and apply to the stored state."""
        if not (ms.pending_events or ctx.held_task is not None or ctx.deferred):
            return ms
        if self._active_for(ms.info.namespace_id):
            raise ReplicationError(
                f"workflow {ms.info.workflow_id!r} run {ms.info.run_id} has an unwritten change; retrying"
            )
        shard.invalidate(ctx)
        return await shard.load_state(ctx)

    def _tasks(self, ms: MutableState, events: list[HistoryEvent]) -> MutationTasks:
        """A standby writes only visibility tasks. A batch that arrives after the namespace failed
        over to this cluster (published by the old active before it stopped) also gets the tasks
        its run now calls for here, as the take-over gave the runs it found."""
        tasks = _visibility_tasks(ms, events)
        if self._active_for(ms.info.namespace_id):
            refresh_tasks(Mutation(ms, tasks, self.engine.clock.now_us()))
        return tasks

    def _replicated_here(self, namespace_id: str) -> bool:
        ns = self.engine.namespaces
        info = ns.cached_by_id(namespace_id) if ns is not None else None
        return info is not None and self.cluster_name in info.clusters

    def _cluster_for_version(self, version: int) -> str:
        ns = self.engine.namespaces
        return ns.cluster.cluster_for_version(version) if ns is not None else self.cluster_name

    def _active_for(self, namespace_id: str) -> bool:
        ns = self.engine.namespaces
        info = ns.cached_by_id(namespace_id) if ns is not None else None
        return info is not None and info.active_cluster == self.cluster_name


def _unwritten(ctx: RunContext) -> bool:
    state = ctx.state
    return bool((state is not None and state.pending_events) or ctx.held_task is not None or ctx.deferred)


def _histories(ms: MutableState) -> VersionHistories:
    current = VersionHistory.from_list(ms.version_history, ms.info.branch_id)
    others = [VersionHistory.from_list(items, b) for b, items in ms.branches]
    return VersionHistories([current, *others], 0)


def _visibility_tasks(ms: MutableState, events: list[HistoryEvent], *, always: bool = False) -> MutationTasks:
    """The standby keeps its own visibility records: one update when a batch starts, closes, or
    changes the search attributes of a run."""
    kinds = {
        EventType.WORKFLOW_EXECUTION_STARTED: VisibilityKind.START,
        EventType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: VisibilityKind.UPSERT,
    }
    kind: VisibilityKind | None = VisibilityKind.UPSERT if always else None
    for e in events:
        if e.event_type in CLOSE_EVENT_TYPES:
            kind = VisibilityKind.CLOSE
        elif e.event_type in kinds and kind is None:
            kind = kinds[e.event_type]
    tasks = MutationTasks()
    if kind is not None:
        i = ms.info
        tasks.visibility.append(Task(int(kind), i.namespace_id, i.workflow_id, i.run_id))
    return tasks
