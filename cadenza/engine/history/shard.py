"""A history shard owned by this host: its range_id, task ids, run cache and the one write path.

Ownership: ``acquire`` bumps the shard's ``range_id`` in the store; every write this host makes is
conditioned on it, so once another host acquires the shard our writes fail with
``ShardOwnershipLostError`` and we stop. Task ids come from the range: ``range_id << RANGE_BITS`` up
to the next range, so two owners can never hand out the same id.

Every mutation of a run goes through ``ShardContext.persist``: it encodes the run's new events as one
history node and its tasks, and writes them with the run row in one conditional transaction. On any
failure the cached state is dropped (it may hold half-applied changes) and the next access reloads.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cadenza.engine.clock import Clock
from cadenza.engine.history.mutable_state import MutableState, decode_state, encode_state
from cadenza.engine.history.tasks import MutationTasks, ReplicationKind, Task, TimerKind
from cadenza.engine.persistence.errors import (
    AlreadyExistsError,
    ConditionFailedError,
    CurrentWorkflowConditionFailedError,
    EntityNotFoundError,
    ShardOwnershipLostError,
)
from cadenza.engine.persistence.protocols import (
    CreateMode,
    CreateWorkflowRequest,
    ExecutionRow,
    HistoryAppend,
    HistoryNode,
    NewRun,
    Stores,
    TaskRow,
    UpdateWorkflowRequest,
    WorkflowTasks,
)
from cadenza.schemas.codec import decode_events, encode_events
from cadenza.schemas.events import HistoryEvent

log = logging.getLogger("cadenza.history")

RANGE_BITS = 20
RUN_CACHE_SIZE = 4096
"""Runs a shard keeps in memory (their state and recent events), the least recently used dropped
first; the current-run cache is bounded the same. Closed runs keep only their closing event, but
a dev server running thousands of workflows a minute otherwise held tens of thousands of them."""
"""Task ids per range: a range is renewed (one conditional shard write) every ~1M tasks."""
HISTORY_CACHE_EVENTS = 10_000
"""Decoded history events a shard keeps across its cached runs. A decoded event costs about a
kilobyte (a run that fans out 2,000 activities holds 2,000 scheduled events with their inputs), so
the run cache is bounded by this weight as well as by its run count: past it, the events of the
least recently used runs are dropped (their states stay) and read again from the store if asked
for. One run's own history is never dropped while it is being used."""


def _never(namespace_id: str) -> bool:
    return False


def _kept_forever(namespace_id: str) -> int | None:
    return None


def retention_timer(ms: MutableState, events: list[HistoryEvent], retention_us: int | None) -> Task | None:
    """The run's "delete history event" timer, if ``events`` close it: due when the namespace's
    retention after the close is over. It carries the close time (a run rebuilt and closed again
    gets a timer of its own; the stale one is dropped, see ``retention``) and the history tree,
    so a deletion interrupted after the run's row is gone can still remove its history."""
    i = ms.info
    if retention_us is None or ms.is_running or not events:
        return None
    if not any(e.event_id == i.completion_event_id for e in events):
        return None
    return Task(
        int(TimerKind.DELETE_HISTORY_EVENT),
        i.namespace_id,
        i.workflow_id,
        i.run_id,
        {"c": i.close_time, "t": i.tree_id},
        visibility_time=i.close_time + retention_us,
    )


def history_replication_task(ms: MutableState, events: list[HistoryEvent]) -> Task:
    """The replication task of one write: which events, on which branch, and the branch's version
    history up to the last of them (what a standby needs to tell append from fork)."""
    i = ms.info
    last = events[-1]
    items = [[e, v] for e, v in ms.version_history if e < last.event_id]
    if items and items[-1][1] == last.version:
        items.pop()
    items.append([last.event_id, last.version])
    return Task(
        int(ReplicationKind.HISTORY),
        i.namespace_id,
        i.workflow_id,
        i.run_id,
        {"f": events[0].event_id, "n": last.event_id + 1, "t": i.tree_id, "b": i.branch_id, "vh": items},
    )


def shard_for(namespace_id: str, workflow_id: str, num_shards: int) -> int:
    return zlib.crc32(f"{namespace_id}/{workflow_id}".encode()) % num_shards


RunKey = tuple[str, str, str]  # namespace_id, workflow_id, run_id


class TaskLedger(Protocol):
    """The queue processors' view of writes in flight (see ``QueueProcessors.reserve``)."""

    def timer_floor(self, shard_id: int) -> int: ...

    def reserve(self, shard_id: int, tasks: MutationTasks) -> None: ...

    def release(self, shard_id: int, tasks: MutationTasks) -> None: ...

    def recover(self, shard_id: int, tasks: MutationTasks) -> None: ...


_DEFINITE = (
    ConditionFailedError,
    CurrentWorkflowConditionFailedError,
    AlreadyExistsError,
    ShardOwnershipLostError,
)
"""Write failures that say the write was not applied; any other leaves its outcome unknown."""


@dataclass(slots=True)
class Deferred:
    """The source of a speculatively started task: acknowledged once the start (or the task's
    outcome) is durable, offered again if the in-memory start is lost."""

    ack: Callable[[], None]
    reoffer: Callable[[], None]


@dataclass(eq=False)
class RunContext:
    """A cached run: its state, its history and the lock that serialises its mutations.

    ``deferred`` and ``deferred_timers`` belong to speculative starts (see ``HistoryEngine.mutate``):
    state changes that are only in memory until the run's next write carries them."""

    key: RunKey
    state: MutableState | None = None
    events: list[HistoryEvent] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    close_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    """Long-polls that wait for the close of the run only (a client's result): woken by the write
    that closes it, not by every write before."""
    deferred: list[Deferred] = field(default_factory=list)
    deferred_timers: list[Task] = field(default_factory=list)
    held_task: Task | None = None
    """The workflow task a held change scheduled (see ``HistoryEngine._hold_write``): offered from
    memory, and written by the run's next write if still unstarted then."""
    writes: int = 0
    """Writes of the run by this host: a change made in memory is carried by any later one."""
    close_event: HistoryEvent | None = None
    """The closing event, once the close is written: a closed run keeps it (for its clients'
    result polls) instead of its whole history, which is read again if anyone asks for it."""
    unsettled: int | None = None
    """A write of the run failed without a definite answer: the shard's ``fence_mark`` then. The
    state is read again only after a fence begun since (``ShardContext.load_state``)."""

    def notify(self, closed: bool = False) -> None:
        """Wakes long-polls waiting for new events, and those waiting for the close if ``closed``."""
        waiters, self.waiters = self.waiters, []
        if closed:
            waiters += self.close_waiters
            self.close_waiters = []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    @property
    def watched(self) -> bool:
        return bool(self.waiters or self.close_waiters)


@dataclass(eq=False)
class NextRun:
    """The run a write creates after closing the current one (continue-as-new, cron, retry)."""

    context: RunContext
    state: MutableState
    tasks: MutationTasks


class ShardContext:
    def __init__(
        self,
        shard_id: int,
        stores: Stores,
        clock: Clock,
        owner: str,
        *,
        on_new_tasks: Callable[[int, MutationTasks], None],
        ledger: TaskLedger | None = None,
        cache_size: int = RUN_CACHE_SIZE,
        history_cache_events: int = HISTORY_CACHE_EVENTS,
        replicates: Callable[[str], bool] | None = None,
        retention_us: Callable[[str], int | None] | None = None,
    ) -> None:
        self.shard_id = shard_id
        self.stores = stores
        self.clock = clock
        self.owner = owner
        self.range_id = 0
        self._next_task_id = 0
        self._max_task_id = 0
        self._renew_lock = asyncio.Lock()
        self._fences_begun = 0
        self._fenced_through = 0
        """The highest ``_fences_begun`` count of a fence that completed (see ``fence_mark``)."""
        self._on_new_tasks = on_new_tasks
        self._ledger = ledger
        self._cache: OrderedDict[RunKey, RunContext] = OrderedDict()
        self._cache_size = cache_size
        self._history_budget = history_cache_events
        self._history_weight = 0
        """Events cached since the last count: an upper bound of what ``ctx.events`` hold (drops
        are not subtracted), recounted exactly once it passes the budget."""
        self.current_runs: dict[tuple[str, str], str] = {}
        """A cache of each workflow id's current run, oldest entries dropped past ``cache_size``
        (a miss reads the current-run row)."""
        self.lost = False
        self.replicates: Callable[[str], bool] = replicates or _never
        """Whether writes to a namespace (by id) are replicated to other clusters."""
        self.retention_us: Callable[[str], int | None] = retention_us or _kept_forever
        """A namespace's (by id) retention of closed runs in µs; None: they are kept forever."""

    async def acquire(self) -> None:
        info = await self.stores.shards.acquire_shard(self.shard_id, self.owner)
        self.range_id = info.range_id
        self._next_task_id = info.range_id << RANGE_BITS
        self._max_task_id = (info.range_id + 1) << RANGE_BITS
        self.ack_levels = dict(info.ack_levels)

    async def _renew_range(self) -> None:
        async with self._renew_lock:
            if self._next_task_id < self._max_task_id:
                return
            info = await self.stores.shards.get_shard(self.shard_id)
            if self._moved_on_by_us(info.range_id, info.owner):
                self._adopt(info.range_id)  # a range never used: fresh ids
                return
            if info.range_id != self.range_id:
                self._lose()
            info.range_id = self.range_id + 1
            info.owner = self.owner
            await self.stores.shards.update_shard(info, expected_range_id=self.range_id)
            self._adopt(info.range_id)

    def _moved_on_by_us(self, stored_range_id: int, stored_owner: str) -> bool:
        """The stored range is past ours and the row still names this host: a range move of ours
        applied although its answer was lost (a timeout), not another host taking the shard."""
        return stored_owner == self.owner and stored_range_id > self.range_id

    def _adopt(self, range_id: int) -> None:
        """Writes with ``range_id`` from now on, allocating task ids from its start: only for a
        range this host has not allocated from (a new one, or its own move whose answer was lost)."""
        self.range_id = range_id
        self._next_task_id = range_id << RANGE_BITS
        self._max_task_id = (range_id + 1) << RANGE_BITS

    def fence_mark(self) -> int:
        """Taken when a write's answer is lost: any fence begun after it settles that write too,
        so the writes lost in one outage wait for one range move between them rather than one
        each (each move refuses every write of the shard in flight, which then goes again)."""
        return self._fences_begun

    async def fence(self, since: int | None = None) -> None:
        """Makes the outcome of this host's earlier writes to the shard definite. ``since``: a
        ``fence_mark``; a fence begun after it that has completed is enough.

        A write whose answer was lost (a timeout, a node killed mid-request) may still apply later:
        on Cassandra its lightweight transaction can sit accepted and be completed by the next one on
        the partition. Every write is conditioned on the shard's ``range_id``, so moving the range
        on (itself such a transaction, which first completes anything in flight) leaves each earlier
        write applied now or never: a read after this returns sees what there is for good, as the
        anchors' shard re-acquisition does. This host's writes still in flight under the old range
        are refused and retried (``_write_refused``)."""
        async with self._renew_lock:
            if since is not None and self._fenced_through > since:
                return
            self._fences_begun += 1
            begun = self._fences_begun
            info = await self.stores.shards.get_shard(self.shard_id)
            if self._moved_on_by_us(info.range_id, info.owner):
                # An earlier move of ours applied without its answer: the row is past every range
                # this host has written with, which is all a fence needs.
                self._adopt(info.range_id)
                self._fenced_through = max(self._fenced_through, begun)
                return
            if info.range_id != self.range_id:
                self._lose()
            info.range_id = self.range_id + 1
            info.owner = self.owner
            try:
                await self.stores.shards.update_shard(info, expected_range_id=self.range_id)
            except ShardOwnershipLostError:
                self.mark_lost()
                raise
            self._adopt(info.range_id)
            self._fenced_through = max(self._fenced_through, begun)

    async def _write_refused(self, e: BaseException) -> BaseException:
        """What a failed create or update raises. A refusal by the range fence because this host
        moved the range on while the write was in flight (``fence``, also one whose answer was
        lost) becomes a definite ``ConditionFailedError``, which the callers retry; only a range
        taken by another host marks the shard lost."""
        if not isinstance(e, ShardOwnershipLostError):
            return e
        refused = ConditionFailedError(
            f"shard {self.shard_id}: write refused by this host's own range move (range_id "
            f"{e.expected_range_id}, now {e.actual_range_id}); not applied"
        )
        moved = e.actual_range_id is not None and e.actual_range_id > e.expected_range_id
        if moved and e.actual_range_id == self.range_id:
            return refused
        if moved:
            async with self._renew_lock:
                try:
                    info = await self.stores.shards.get_shard(self.shard_id)
                except Exception:
                    return refused  # not applied; whose the shard is, the next write finds out
                if info.range_id == self.range_id:
                    return refused  # fenced since the write was built: ids stay where they are
                if self._moved_on_by_us(info.range_id, info.owner):
                    self._adopt(info.range_id)  # a range never used: fresh ids
                    return refused
        self.mark_lost()
        return e

    def _lose(self) -> None:
        self.mark_lost()
        raise ShardOwnershipLostError(self.shard_id, self.range_id, None)

    async def release(self) -> None:
        """Hands the shard over as a stopping host: saves its ack levels and clears the owner on
        the shard row, fenced by this host's ``range_id`` and leaving it as it is: the next
        owner's ``acquire`` moves the range on (fencing anything of ours still in flight) and
        reads its tasks from these levels. From now on this host writes nothing to the shard."""
        async with self._renew_lock:
            if self.lost:
                return
            self.lost = True  # no write of ours may follow the handover (``HistoryEngine.shard``)
            info = await self.stores.shards.get_shard(self.shard_id)
            if self._moved_on_by_us(info.range_id, info.owner):
                self._adopt(info.range_id)
            if info.range_id != self.range_id:
                return  # another host has it already
            info.owner = ""
            info.ack_levels = dict(self.ack_levels)
            try:
                await self.stores.shards.update_shard(info, expected_range_id=self.range_id)
            except ShardOwnershipLostError:
                return  # taken over meanwhile: nothing left to hand over

    def cached_runs(self) -> list[RunContext]:
        """The runs in this shard's cache, oldest use first."""
        return list(self._cache.values())

    def mark_lost(self) -> None:
        """Another host acquired the shard: stop writing to it (logged once)."""
        if not self.lost:
            self.lost = True
            log.error(
                "shard %d: ownership lost (range_id %d is stale); this host stops writing to it",
                self.shard_id,
                self.range_id,
            )

    async def allocate_task_ids(self, n: int) -> list[int]:
        if self._next_task_id + n > self._max_task_id:
            await self._renew_range()
        start = self._next_task_id
        self._next_task_id += n
        return list(range(start, start + n))

    async def save_ack_levels(self, levels: dict[str, int]) -> None:
        self.ack_levels.update(levels)
        # Under the range lock: a fence between the read and the write would otherwise have the
        # write put the old range back.
        async with self._renew_lock:
            info = await self.stores.shards.get_shard(self.shard_id)
            if self._moved_on_by_us(info.range_id, info.owner):
                self._adopt(info.range_id)
            info.ack_levels = dict(self.ack_levels)
            try:
                await self.stores.shards.update_shard(info, expected_range_id=self.range_id)
            except ShardOwnershipLostError:
                self.mark_lost()
                raise

    # -- the run cache -----------------------------------------------------------------------------

    def run_context(self, key: RunKey) -> RunContext:
        ctx = self._cache.get(key)
        if ctx is None:
            ctx = RunContext(key)
            self._cache[key] = ctx
            if len(self._cache) > self._cache_size:
                self._evict_some()
        else:
            self._cache.move_to_end(key)
        return ctx

    def _evict_some(self) -> None:
        # Evict the least recently used runs that nobody is mutating right now.
        for k in list(self._cache.keys())[: max(1, self._cache_size // 10)]:
            c = self._cache[k]
            if not c.lock.locked() and not c.watched and not c.deferred:
                del self._cache[k]

    def _cache_events(self, ctx: RunContext, added: int) -> None:
        """Counts ``added`` events newly held by ``ctx.events``; past the budget, drops the cached
        events of the least recently used runs other than ``ctx`` (see ``HISTORY_CACHE_EVENTS``)."""
        self._history_weight += added
        if self._history_weight <= self._history_budget:
            return
        total = sum(len(c.events) for c in self._cache.values() if c.events is not None)
        # Down to 3/4 of the budget, so a run that keeps growing does not recount on every write.
        target = self._history_budget * 3 // 4
        for c in self._cache.values():  # least recently used first
            if total <= target:
                break
            if c is not ctx and c.events is not None:
                # Nothing else is lost: the list handed to a reader stays valid, and a write
                # appends to ``ctx.events`` only while it is not None.
                total -= len(c.events)
                c.events = None
        self._history_weight = total

    def cached_history_events(self) -> int:
        """Decoded events held by this shard's cached runs (what ``HISTORY_CACHE_EVENTS`` bounds)."""
        return sum(len(c.events) for c in self._cache.values() if c.events is not None)

    def invalidate(self, ctx: RunContext) -> None:
        """Drops the cached state. Speculative starts it held are lost with it, so their tasks are
        offered again: the reloaded state shows them not started."""
        ctx.state = None
        ctx.events = None
        ctx.close_event = None
        ctx.held_task = None
        deferred, ctx.deferred = ctx.deferred, []
        ctx.deferred_timers.clear()
        for d in deferred:
            d.reoffer()

    def landed(self, key: RunKey) -> None:
        """A write of the run whose answer was lost turned out to be applied (its tasks were
        found): the run's long-polls (a client waiting for the result, a worker for new events)
        look again, as after any write; they would otherwise wait out their whole poll. (Its state
        needs nothing: the failure dropped it, and ``load_state`` reads it again only after a
        fence, which landed the write.)"""
        ctx = self._cache.get(key)
        if ctx is not None:
            ctx.notify(closed=True)

    async def load_state(self, ctx: RunContext) -> MutableState:
        if ctx.state is None:
            if ctx.unsettled is not None:
                # The last write's answer was lost, and on Cassandra it may still land: an
                # accepted lightweight transaction is completed by the next one on the shard's
                # partition. Read before that, the state would be older than the store, and
                # whatever is decided against it (a task re-offered found stale and dropped, a
                # timeout found moot) would be lost once the write lands. A fence lands it or
                # rules it out first; the writes lost in one outage share one.
                await self.fence(ctx.unsettled)
                ctx.unsettled = None
            ns, wid, rid = ctx.key
            row = await self.stores.executions.get_workflow_execution(self.shard_id, ns, wid, rid)
            ms = decode_state(row.data)
            ms.db_version = row.db_version
            ctx.state = ms
        return ctx.state

    async def load_events(self, ctx: RunContext) -> list[HistoryEvent]:
        if ctx.events is None:
            ms = await self.load_state(ctx)
            # Only what is written: a held change's events (see ``HistoryEngine._hold_write``) are
            # counted in ``next_event_id`` but not written, and the store may hold stale nodes at
            # their ids (a write whose outcome was unknown and that did not apply).
            written_up_to = ms.next_event_id - len(ms.pending_events)
            events: list[HistoryEvent] = []
            token: bytes | None = None
            while True:
                nodes, token = await self.stores.history.read_history_branch(
                    ms.info.tree_id,
                    ms.info.branch_id,
                    min_node_id=1,
                    max_node_id=written_up_to,
                    page_size=1000,
                    token=token,
                )
                for node in nodes:
                    events.extend(decode_events(node.data))
                if not token:
                    break
            ctx.events = events
            self._cache_events(ctx, len(events))
            return events
        return ctx.events

    async def current_run_id(self, namespace_id: str, workflow_id: str) -> str:
        """The current run of a workflow id; ``EntityNotFoundError`` when it never ran."""
        run_id = self.current_runs.get((namespace_id, workflow_id))
        if run_id is None:
            cur = await self.stores.executions.get_current_execution(self.shard_id, namespace_id, workflow_id)
            run_id = cur.run_id
            self.remember_current(namespace_id, workflow_id, run_id)
        return run_id

    def remember_current(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        runs = self.current_runs
        runs[(namespace_id, workflow_id)] = run_id
        if len(runs) > self._cache_size:  # dicts keep insertion order: the first is the oldest
            del runs[next(iter(runs))]

    # -- the write path ----------------------------------------------------------------------------

    async def _encode(
        self,
        ms: MutableState,
        events: list[HistoryEvent],
        tasks: MutationTasks,
        new_branch: bool,
        replicated_blob: bytes | None = None,
    ) -> tuple[list[HistoryAppend], WorkflowTasks]:
        """Allocates task ids and encodes the write. ``replicated_blob``: the events came from
        another cluster, already encoded; they are stored byte for byte as the source wrote them
        (their task ids are the source's) and are not replicated again."""
        replication: Task | None = None
        replicates = replicated_blob is None and self.replicates(ms.info.namespace_id)
        if tasks.replication and not replicates:
            tasks.replication.clear()  # activity syncs of a namespace that is not replicated
        if events and replicates:
            replication = history_replication_task(ms, events)
            # Before any activity sync of the same write: a standby must have the events first.
            tasks.replication.insert(0, replication)
        n = (
            len(tasks.transfer)
            + len(tasks.timer)
            + len(tasks.visibility)
            + len(tasks.replication)
            + (1 if events else 0)
        )
        ids = await self.allocate_task_ids(n) if n else []
        appends: list[HistoryAppend] = []
        if events:
            txn_id = ids.pop()
            if replicated_blob is None:
                for ev in events:
                    ev.task_id = txn_id
                blob = encode_events(events, remember=True)
            else:
                blob = replicated_blob
            if replication is not None:
                replication.payload = blob
            ms.info.history_size_bytes += len(blob)
            appends.append(
                HistoryAppend(
                    tree_id=ms.info.tree_id,
                    branch_id=ms.info.branch_id,
                    node=HistoryNode(events[0].event_id, txn_id, blob, len(events)),
                    is_new_branch=new_branch,
                )
            )
        ledger = self._ledger
        rows = WorkflowTasks()
        for t in tasks.transfer:
            t.task_id = ids.pop(0)
            rows.transfer.append(TaskRow(t.task_id, t.encode()))
        if ledger is not None and tasks.timer:
            # Below the saved timer level a restart would not read them: moved later together,
            # in their order (see ``QueueProcessors.timer_floor``).
            shift = ledger.timer_floor(self.shard_id) - min(t.visibility_time for t in tasks.timer)
            if shift > 0:
                for t in tasks.timer:
                    t.visibility_time += shift
        for t in tasks.timer:
            t.task_id = ids.pop(0)
            rows.timer.append(TaskRow(t.task_id, t.encode(), t.visibility_time))
        for t in tasks.visibility:
            t.task_id = ids.pop(0)
            rows.visibility.append(TaskRow(t.task_id, t.encode()))
        for t in tasks.replication:
            t.task_id = ids.pop(0)
            rows.replication.append(TaskRow(t.task_id, t.encode()))
        if ledger is not None and n:
            # With no await since the ids and the timer floor were taken: an ack level saved from
            # now on stays below these tasks, and none was saved past them in between.
            ledger.reserve(self.shard_id, tasks)
        return appends, rows

    def _row(self, ms: MutableState) -> ExecutionRow:
        i = ms.info
        return ExecutionRow(
            namespace_id=i.namespace_id,
            workflow_id=i.workflow_id,
            run_id=i.run_id,
            state=i.state,
            status=i.status,
            next_event_id=ms.next_event_id,
            db_version=ms.db_version,
            last_write_version=i.last_write_version,
            start_request_id=i.create_request_id,
            data=encode_state(ms),
            start_version=i.start_version,
        )

    async def create_run(
        self,
        ctx: RunContext,
        ms: MutableState,
        tasks: MutationTasks,
        *,
        mode: CreateMode,
        previous_run_id: str = "",
        previous_last_write_version: int = 0,
        replicated_blob: bytes | None = None,
    ) -> None:
        events = ms.take_pending_events()
        ms.db_version = 1
        self._add_retention_timer(ms, events, tasks)
        try:
            appends, rows = await self._encode(ms, events, tasks, True, replicated_blob)
            await self.stores.executions.create_workflow_execution(
                CreateWorkflowRequest(
                    self.shard_id,
                    self.range_id,
                    NewRun(
                        self._row(ms),
                        appends,
                        rows,
                        mode=mode,
                        previous_run_id=previous_run_id,
                        previous_last_write_version=previous_last_write_version,
                    ),
                )
            )
        except BaseException as e:
            refused = await self._write_refused(e)
            if not isinstance(refused, _DEFINITE):
                ctx.unsettled = self.fence_mark()
            self._maybe_written(refused, tasks)
            if refused is not e:
                raise refused from e
            raise
        ctx.state = ms
        ctx.events = events
        self._cache_events(ctx, len(events))
        if mode != CreateMode.ZOMBIE:  # a zombie leaves the id's current run as it is
            self.remember_current(ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id)
        self._on_new_tasks(self.shard_id, tasks)
        ctx.notify()

    def _add_retention_timer(
        self, ms: MutableState, events: list[HistoryEvent], tasks: MutationTasks
    ) -> None:
        """The write that closes a run carries its retention timer: one more row in the same
        transaction, so the close path gains no round trip and the timer is as durable as the close."""
        if ms.is_running:
            return  # the hot path: one attribute check
        timer = retention_timer(ms, events, self.retention_us(ms.info.namespace_id))
        if timer is not None:
            tasks.timer.append(timer)

    def _maybe_written(self, e: BaseException, tasks: MutationTasks) -> None:
        """A write failed without a definite answer (the store timed out, the connection dropped):
        it may have been applied. Its tasks' ids were allocated, so later tasks would move the ack
        level past them and delete their rows if they exist; the queue processors hold the level
        and look them up until the store answers (see ``QueueProcessors.recover``)."""
        if self._ledger is None or not tasks:
            return
        if not any(t.task_id for t in (*tasks.transfer, *tasks.timer, *tasks.visibility)):
            return  # failed before ids were allocated: nothing was sent (and nothing reserved)
        if isinstance(e, _DEFINITE):
            self._ledger.release(self.shard_id, tasks)
        else:
            self._ledger.recover(self.shard_id, tasks)

    async def update_run(
        self,
        ctx: RunContext,
        ms: MutableState,
        tasks: MutationTasks,
        still_pending: Callable[[MutableState, Task], bool] | None = None,
        new_run: NextRun | None = None,
        replicated_blob: bytes | None = None,
    ) -> list[HistoryEvent]:
        """Persists the run's pending events and ``tasks``; returns the events written.

        The write also makes any speculative start of the run durable: the timers of starts that
        are ``still_pending`` are written with it, and the starts' source tasks are acknowledged
        once it commits."""
        events = ms.take_pending_events()
        if ctx.deferred_timers and still_pending is not None:
            tasks.timer.extend(
                Task(t.kind, t.namespace_id, t.workflow_id, t.run_id, dict(t.args), t.visibility_time)
                for t in ctx.deferred_timers
                if still_pending(ms, t)
            )
        self._add_retention_timer(ms, events, tasks)
        expected = ms.db_version
        ms.db_version = expected + 1
        try:
            appends, rows = await self._encode(ms, events, tasks, False, replicated_blob)
            next_run: NewRun | None = None
            new_events: list[HistoryEvent] = []
            if new_run is not None:
                new_events = new_run.state.take_pending_events()
                new_run.state.db_version = 1
                n_appends, n_rows = await self._encode(
                    new_run.state, new_events, new_run.tasks, new_branch=True
                )
                next_run = NewRun(
                    self._row(new_run.state),
                    n_appends,
                    n_rows,
                    mode=CreateMode.CONTINUE_AS_NEW,
                    previous_run_id=ms.info.run_id,
                )
            await self.stores.executions.update_workflow_execution(
                UpdateWorkflowRequest(
                    self.shard_id,
                    self.range_id,
                    self._row(ms),
                    expected,
                    appends,
                    rows,
                    continue_as_new=next_run,
                )
            )
        except BaseException as e:
            refused = await self._write_refused(e)
            self.invalidate(ctx)
            if not isinstance(refused, _DEFINITE):
                ctx.unsettled = self.fence_mark()
            self._maybe_written(refused, tasks)
            if new_run is not None:
                self._maybe_written(refused, new_run.tasks)
            if refused is not e:
                raise refused from e
            raise
        ctx.writes += 1
        if ctx.events is not None:
            ctx.events.extend(events)
            self._cache_events(ctx, len(events))
        if tasks.visibility and not ms.is_running:
            # The state is dropped from the cache below; its close record is built from this.
            for t in tasks.visibility:
                t.state = ms
        self._on_new_tasks(self.shard_id, tasks)
        if new_run is not None:
            new_run.context.state = new_run.state
            new_run.context.events = new_events
            self._cache_events(new_run.context, len(new_events))
            info = new_run.state.info
            self.remember_current(info.namespace_id, info.workflow_id, info.run_id)
            self._on_new_tasks(self.shard_id, new_run.tasks)
        deferred, ctx.deferred = ctx.deferred, []
        # A new list: the caller hands the old one to the timer queue to drop its entries.
        ctx.deferred_timers = []
        for d in deferred:
            d.ack()
        if events:
            closed = not ms.is_running
            if closed:
                # Closed runs are rarely read again, and a cache of thousands of histories and
                # states makes every full garbage collection walk them: keep only the closing
                # event (what clients waiting for the result read); the rest is read again if asked.
                close_id = ms.info.completion_event_id
                ctx.close_event = next((e for e in reversed(events) if e.event_id == close_id), None)
                ctx.events = None
                if ctx.close_event is not None:
                    ctx.state = None
            ctx.notify(closed=closed)
        return events

    async def read_tasks_from(
        self, category: int, min_key: tuple[int, int], max_key: tuple[int, int] = (1 << 62, 1 << 62)
    ) -> list[Task]:
        """Loads every pending task of a category with ``min_key <= key < max_key`` (start-up
        recovery, and the timer queue's next window)."""
        from cadenza.engine.persistence.protocols import TaskCategory

        out: list[Task] = []
        cur = min_key
        while True:
            rows = await self.stores.executions.get_tasks(
                self.shard_id,
                TaskCategory(category),
                min_key=cur,
                max_key=max_key,
                batch_size=1000,
            )
            for r in rows:
                out.append(Task.decode(r.data, r.task_id, r.visibility_time))
            if len(rows) < 1000:
                return out
            last = rows[-1]
            cur = (last.visibility_time, last.task_id + 1)


__all__ = ["EntityNotFoundError", "RunContext", "RunKey", "ShardContext", "shard_for"]
