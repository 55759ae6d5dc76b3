"""The shard's transfer and timer queue processors.

New tasks arrive in memory right after their mutation commits (no read back from the store); at
start-up each shard's pending tasks are loaded from its ack levels, which is how tasks written before a
crash get processed. Timers are the exception to "in memory": only those due within the timer
window (``timer_window_s``) are held; later ones (a retention timer per closed run, a month-long
``workflow.sleep``) stay in the store until the window reaches them, so memory does not grow with
the number of closed runs. A task is acknowledged when its effect is done (a workflow or activity task was
started by a worker or found stale, a timer's rule was applied); the ack level is the lowest key still
outstanding, and everything below it is range-deleted in the background. So processing is
at-least-once, and every handler is idempotent because it re-checks the run's state.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cadenza.engine import logcontext
from cadenza.engine.history.tasks import MutationTasks, Task, TimerKind, TransferKind
from cadenza.engine.matching import ACTIVITY_TASK, WORKFLOW_TASK, MatchingEngine, MatchTask
from cadenza.engine.persistence.errors import ShardOwnershipLostError
from cadenza.engine.persistence.protocols import TaskCategory
from cadenza.metrics.queues import queue_metrics

if TYPE_CHECKING:
    from cadenza.engine.history.shard import ShardContext

log = logging.getLogger("cadenza.queues")

MAX_KEY = (1 << 62, 1 << 62)
TIMER_WINDOW_S = 300.0
"""Timers due within this many seconds are held in memory; later ones are read from the store as
the window moves on (the anchors' timer queue reads ahead the same way)."""


TIMER_LEVEL_LAG_US = 1_000_000
"""How far behind the present the saved timer level stays: a change whose time was taken up to this
long before the level was saved writes its timers above it (``QueueProcessors.timer_floor``); a
restart re-reads the timers of at most this long that had already fired (their handlers re-check)."""


class _AckTracker:
    """Outstanding task keys of one shard queue; the ack level is the lowest outstanding key."""

    def __init__(self, initial_level: tuple[int, int]) -> None:
        self.outstanding: set[tuple[int, int]] = set()
        self.max_seen = initial_level
        self.level = initial_level
        self.persisted_level = initial_level
        self.cap: tuple[int, int] | None = None
        """The level never passes this key: the timer queue's tasks at or above it have not been
        loaded, so nothing tracks them and their rows must not be range-deleted."""
        self.floor = initial_level
        """The highest level saved, or being saved: a restart reads tasks from there on, so a task
        written from now on must have a key at or above it (see ``QueueProcessors.timer_floor``)."""

    def add(self, key: tuple[int, int]) -> None:
        self.outstanding.add(key)
        if key >= self.max_seen:
            self.max_seen = (key[0], key[1] + 1)

    def done(self, key: tuple[int, int]) -> None:
        self.outstanding.discard(key)

    def compute(self, limit: tuple[int, int] | None = None) -> tuple[int, int]:
        level = min(self.outstanding) if self.outstanding else self.max_seen
        if self.cap is not None and level > self.cap:
            level = self.cap
        if limit is not None and level > limit:
            level = limit
        self.level = level
        return level


TimerHandler = Callable[[Task], Awaitable[None]]
VisibilityHandler = Callable[[list[Task]], Awaitable[None]]
ReplicationHandler = Callable[[list[Task]], Awaitable[None]]


def _nothing_to_ack() -> None:
    pass


_ACK_AT = "_ack_at"
"""In a retried timer's args: the due time of its row, under which the ack tracker holds it."""


def _timer_key(task: Task) -> tuple[int, int]:
    """The key the timer's ack tracker holds it by: its row's (a retry is due later)."""
    return (task.args.get(_ACK_AT, task.visibility_time), task.task_id)


def _tasks_of(category: TaskCategory, t: Task) -> MutationTasks:
    if category == TaskCategory.TRANSFER:
        return MutationTasks(transfer=[t])
    if category == TaskCategory.TIMER:
        return MutationTasks(timer=[t])
    if category == TaskCategory.REPLICATION:
        return MutationTasks(replication=[t])
    return MutationTasks(visibility=[t])


class QueueProcessors:
    def __init__(
        self,
        matching: MatchingEngine,
        *,
        timer_handler: TimerHandler,
        visibility_handler: VisibilityHandler | None = None,
        transfer_handler: TimerHandler | None = None,
        replication_handler: ReplicationHandler | None = None,
        now_us: Callable[[], int],
        sleep_until: Callable[[int], Awaitable[None]],
        flush_interval_s: float = 1.0,
        max_concurrent_timers: int = 64,
        metrics: Any = None,
        timer_window_s: float = TIMER_WINDOW_S,
    ) -> None:
        self._matching = matching
        self._metrics = queue_metrics(metrics, now_us)
        self._timer_handler = timer_handler
        self._now_us = now_us
        self._sleep_until = sleep_until
        self._flush_interval_s = flush_interval_s
        self._shards: dict[int, ShardContext] = {}
        self._transfer: dict[int, _AckTracker] = {}
        self._timer_acks: dict[int, _AckTracker] = {}
        self._timers: list[tuple[int, int, int, Task]] = []
        self._timer_changed = asyncio.Event()
        self._armed_for: int | None = None
        """The due time the timer loop's current sleep was armed for."""
        self._timer_slots = asyncio.Semaphore(max_concurrent_timers)
        self._timer_window_us = int(timer_window_s * 1e6)
        self._loaded_until = 0
        """Timers due before this (µs) are in ``_timers``; later ones only in the store."""
        self._next_unloaded: int | None = None
        """When the earliest timer left in the store is due (None: there is none)."""
        self._unloaded_changed = asyncio.Event()
        self._loading = False
        self._background: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._visibility_handler = visibility_handler
        self._transfer_handler = transfer_handler
        self._vis_acks: dict[int, _AckTracker] = {}
        self._vis_pending: list[tuple[int, Task]] = []
        self._vis_ready = asyncio.Event()
        self.replication_handler = replication_handler
        """Publishes replication tasks to this cluster's topic (None: nothing is replicated, and
        tasks that do arrive, e.g. after the config dropped replication, are acknowledged)."""
        self._repl_acks: dict[int, _AckTracker] = {}
        self._repl_pending: list[tuple[int, Task]] = []
        self._repl_ready = asyncio.Event()
        self.replication_linger_s = 0.01
        self.visibility_linger_s = 0.05
        """As ``replication_linger_s``, for the visibility outbox: the updates of the writes made
        meanwhile go to the sink together (one append to the bus; a short run's start and close
        become one record, see ``Host._on_visibility``)."""
        self._vis_busy = 0
        self._vis_handed = 0
        """Visibility updates handed to the outbox so far, and (below) published so far: a
        read-after-write barrier waits for the second to reach what the first was when called."""
        self._vis_published = 0
        self._repl_busy = 0
        """Tasks of the batch each outbox is publishing right now (taken off its pending list)."""
        self._stopping = False
        self._fence_failing: set[int] = set()
        """Shards whose fence before a lookup is failing: every lost write of an outage retries
        it, so only the first failure per shard is logged at INFO (the rest at DEBUG)."""
        self._volatile_ids = itertools.count(-1, -1)
        # Volatile timers made redundant by a write of their run: skipped when due, and purged from
        # the heap once they are the bulk of it (each holds its task until then, and thousands of
        # them alive for the length of a timeout made every full garbage collection walk them).
        self._obsolete: set[int] = set()

    async def start(self, shards: dict[int, ShardContext]) -> None:
        self._loaded_until = self._now_us() + self._timer_window_us
        window_end = (self._loaded_until, 0)
        for shard_id, shard in shards.items():
            self._shards[shard_id] = shard
            t_level = shard.ack_levels.get("transfer", 0)
            # Not past the present: a level saved before it was bounded by the present (see
            # ``flush_ack_levels``) may be ahead of timers written after it was saved.
            tm_level = min(shard.ack_levels.get("timer", 0), self._now_us())
            v_level = shard.ack_levels.get("visibility", 0)
            r_level = shard.ack_levels.get("replication", 0)
            self._transfer[shard_id] = _AckTracker((0, t_level))
            self._timer_acks[shard_id] = _AckTracker((tm_level, 0))
            self._vis_acks[shard_id] = _AckTracker((0, v_level))
            self._repl_acks[shard_id] = _AckTracker((0, r_level))
            pending = MutationTasks(
                transfer=await shard.read_tasks_from(TaskCategory.TRANSFER, (0, t_level)),
                timer=await shard.read_tasks_from(TaskCategory.TIMER, (tm_level, 0), window_end),
                visibility=await shard.read_tasks_from(TaskCategory.VISIBILITY, (0, v_level)),
                replication=await shard.read_tasks_from(TaskCategory.REPLICATION, (0, r_level)),
            )
            if pending:
                log.info(
                    "shard %d: recovering %d transfer and %d timer tasks",
                    shard_id,
                    len(pending.transfer),
                    len(pending.timer),
                )
            self.on_new_tasks(shard_id, pending)
            self._timer_acks[shard_id].cap = window_end
            self._note_unloaded(await self._first_unloaded(shard))
        self._loops = [
            asyncio.create_task(self._timer_loop(), name="cadenza-timers"),
            asyncio.create_task(self._timer_window_loop(), name="cadenza-timer-window"),
            asyncio.create_task(self._flush_loop(), name="cadenza-ack-levels"),
            asyncio.create_task(self._visibility_loop(), name="cadenza-visibility-outbox"),
            asyncio.create_task(self._replication_loop(), name="cadenza-replication-outbox"),
        ]

    async def stop(self, publish_for_s: float = 0.0) -> None:
        """Stops processing. Timers and transfer tasks stop at once: their rows stay above the ack
        levels, so the shard's next owner processes them. With ``publish_for_s`` the visibility and
        replication outboxes first publish what they hold, for at most that long, so the next
        owner does not publish it again (a duplicate is harmless, only late)."""
        timers, outboxes = self._loops[:3], self._loops[3:]
        for t in timers:
            t.cancel()
        for t in list(self._background):
            t.cancel()
        await asyncio.gather(*timers, *self._background, return_exceptions=True)
        if publish_for_s > 0 and outboxes:
            deadline = time.monotonic() + publish_for_s
            while self.outbox_holds() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if self.outbox_holds():
                log.warning(
                    "stopping with %d visibility and %d replication tasks unpublished; the shards' "
                    "next owner publishes them",
                    len(self._vis_pending) + self._vis_busy,
                    len(self._repl_pending) + self._repl_busy,
                )
        self._stopping = True
        for t in outboxes:
            t.cancel()
        await asyncio.gather(*outboxes, return_exceptions=True)

    def outbox_holds(self) -> int:
        """Visibility and replication tasks held in memory, waiting or being published."""
        return len(self._vis_pending) + self._vis_busy + len(self._repl_pending) + self._repl_busy

    # -- intake --------------------------------------------------------------------------------------

    def on_new_tasks(self, shard_id: int, tasks: MutationTasks) -> None:
        for t in tasks.transfer:
            self._transfer[shard_id].add((0, t.task_id))
            self._dispatch_transfer(shard_id, t)
        if self._metrics is not None:
            if tasks.visibility:
                self._metrics.arrived(TaskCategory.VISIBILITY, shard_id, tasks.visibility)
            if tasks.replication:
                self._metrics.arrived(TaskCategory.REPLICATION, shard_id, tasks.replication)
        if tasks.visibility:
            acks = self._vis_acks[shard_id]
            for t in tasks.visibility:
                acks.add((0, t.task_id))
                self._vis_pending.append((shard_id, t))
                self._vis_handed += 1
            self._vis_ready.set()
        if tasks.replication:
            acks = self._repl_acks[shard_id]
            for t in tasks.replication:
                acks.add((0, t.task_id))
                self._repl_pending.append((shard_id, t))
            self._repl_ready.set()
        if tasks.timer:
            earliest = self._timers[0][0] if self._timers else None
            acks = self._timer_acks[shard_id]
            loaded_until = self._loaded_until
            for t in tasks.timer:
                if t.visibility_time >= loaded_until:
                    # Durable in the store; the window loads it when it comes near. Its key was
                    # reserved for the write: the tracker's cap keeps the level below it instead.
                    acks.done((t.visibility_time, t.task_id))
                    self._note_unloaded(t.visibility_time)
                    continue
                acks.add((t.visibility_time, t.task_id))
                heapq.heappush(self._timers, (t.visibility_time, t.task_id, shard_id, t))
            if self._timers and (earliest is None or self._timers[0][0] < earliest):
                self._timer_changed.set()

    def push_volatile_timer(self, shard_id: int, t: Task) -> None:
        """A timer that lives only in memory (the timeout of a speculative start). It has no row, so
        it is never acknowledged; negative ids keep it apart from stored timers."""
        t.task_id = next(self._volatile_ids)
        earliest = self._timers[0][0] if self._timers else None
        heapq.heappush(self._timers, (t.visibility_time, t.task_id, shard_id, t))
        if earliest is None or t.visibility_time < earliest:
            self._timer_changed.set()

    def drop_volatile_timers(self, timers: list[Task]) -> None:
        """The run was written after these volatile timers were pushed: the write carried a durable
        copy of each start that was still pending, so none of them needs to fire."""
        obsolete = self._obsolete
        for t in timers:
            obsolete.add(t.task_id)
        if len(obsolete) >= 1024 and 2 * len(obsolete) > len(self._timers):
            self._timers = [e for e in self._timers if e[1] not in obsolete]
            heapq.heapify(self._timers)
            obsolete.clear()

    def _keys(
        self, shard_id: int, tasks: MutationTasks
    ) -> list[tuple[TaskCategory, tuple[int, int], _AckTracker]]:
        keys: list[tuple[TaskCategory, tuple[int, int], _AckTracker]] = []
        if shard_id not in self._transfer:
            return keys
        for t in tasks.transfer:
            keys.append((TaskCategory.TRANSFER, (0, t.task_id), self._transfer[shard_id]))
        for t in tasks.timer:
            keys.append((TaskCategory.TIMER, (t.visibility_time, t.task_id), self._timer_acks[shard_id]))
        for t in tasks.visibility:
            keys.append((TaskCategory.VISIBILITY, (0, t.task_id), self._vis_acks[shard_id]))
        for t in tasks.replication:
            keys.append((TaskCategory.REPLICATION, (0, t.task_id), self._repl_acks[shard_id]))
        return keys

    def timer_floor(self, shard_id: int) -> int:
        """The earliest time a timer written now may be due: the shard's timer level saved (or
        being saved), from which a restart reads timers. A write whose timers are due earlier (its
        time was taken more than ``TIMER_LEVEL_LAG_US`` before the level moved on: a slow write, or
        the time-skipping clock jumping meanwhile) has them moved later together, the earliest to
        the floor, rather than below the level, where no restart would find them; their order is
        kept. As the anchors' shard moves a timer below its read level."""
        tracker = self._timer_acks.get(shard_id)
        return tracker.floor[0] if tracker is not None else 0

    def reserve(self, shard_id: int, tasks: MutationTasks) -> None:
        """Called with a write's tasks before it is sent: the ack levels stay below them until the
        write's outcome is known, so a slow write's rows cannot be range-deleted under it."""
        for _, key, tracker in self._keys(shard_id, tasks):
            tracker.add(key)

    def release(self, shard_id: int, tasks: MutationTasks) -> None:
        """The write definitely failed: its tasks do not exist."""
        for _, key, tracker in self._keys(shard_id, tasks):
            tracker.done(key)

    def recover(self, shard_id: int, tasks: MutationTasks) -> None:
        """Tasks of a write whose outcome is unknown (reserved, so the ack levels are held): look them
        up until the store answers; the ones that were written are processed, the rest released."""
        shard = self._shards.get(shard_id)
        wanted = self._keys(shard_id, tasks)
        if shard is None or not wanted:
            return
        bg = asyncio.create_task(self._recover(shard, wanted, shard.fence_mark()))
        self._background.add(bg)
        bg.add_done_callback(self._background.discard)

    async def _recover(
        self,
        shard: ShardContext,
        wanted: list[tuple[TaskCategory, tuple[int, int], _AckTracker]],
        since: int,
    ) -> None:
        delay = 0.5
        fenced = False
        while wanted and not self._stopping and not shard.lost:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            if not fenced:
                # Until the shard is fenced, a write whose answer was lost can still apply after a
                # lookup found nothing (see ``ShardContext.fence``).
                try:
                    await shard.fence(since)
                except Exception as e:
                    if shard.shard_id in self._fence_failing:
                        log.debug("shard %d: fencing before a lookup failed again (%s)", shard.shard_id, e)
                    else:
                        self._fence_failing.add(shard.shard_id)
                        log.info(
                            "shard %d: fencing before a lookup failed (%s); retrying until the store "
                            "answers (further failures are logged at DEBUG)",
                            shard.shard_id,
                            e,
                        )
                    continue
                fenced = True
                if shard.shard_id in self._fence_failing:
                    self._fence_failing.discard(shard.shard_id)
                    log.info("shard %d: fenced; looking up the writes lost in the outage", shard.shard_id)
            remaining = []
            for category, key, tracker in wanted:
                try:
                    rows = await shard.stores.executions.get_tasks(
                        shard.shard_id, category, min_key=key, max_key=(key[0], key[1] + 1), batch_size=1
                    )
                except Exception:
                    remaining.append((category, key, tracker))
                    continue
                tracker.done(key)
                if rows:
                    r = rows[0]
                    found = Task.decode(r.data, r.task_id, r.visibility_time)
                    shard.landed((found.namespace_id, found.workflow_id, found.run_id))
                    self.on_new_tasks(shard.shard_id, _tasks_of(category, found))
            wanted = remaining

    # -- transfer --------------------------------------------------------------------------------------

    def _dispatch_transfer(self, shard_id: int, t: Task) -> None:
        key = (0, t.task_id)
        acks = self._transfer[shard_id]

        def ack() -> None:
            acks.done(key)

        if self._metrics is not None:
            ack = self._metrics.transfer_ack(t, ack)
        if t.kind == TransferKind.WORKFLOW_TASK or t.kind == TransferKind.ACTIVITY_TASK:
            task_type = WORKFLOW_TASK if t.kind == TransferKind.WORKFLOW_TASK else ACTIVITY_TASK
            if t.claim is not None:
                # Eager dispatch (an eager start's first workflow task, or activities a completing
                # worker runs itself): started for the caller instead of offered to matching.
                claim, t.claim = t.claim, None
                a = t.args
                task = MatchTask(t.namespace_id, t.workflow_id, t.run_id, a["s"], a["a"], ack=ack)
                task.task_queue, task.task_type = a["q"], task_type  # where to offer it again
                claim(task)
            else:
                self.offer(task_type, t, ack)
        elif self._transfer_handler is not None:
            bg = asyncio.create_task(self._run_transfer(t, ack, shard_id))
            self._background.add(bg)
            bg.add_done_callback(self._background.discard)
        else:
            ack()

    async def _run_transfer(self, t: Task, ack: Callable[[], None], shard_id: int) -> None:
        """Cross-workflow tasks: retried with backoff until their handler succeeds."""
        assert self._transfer_handler is not None
        if logcontext.enabled():  # this task's own context: what its lines are about
            ids = {"namespace_id": t.namespace_id, "workflow_id": t.workflow_id, "run_id": t.run_id}
            logcontext.bind(shard_id=shard_id, **ids)
        delay = 0.05
        started = time.perf_counter()
        attempts = 0
        while not self._stopping:
            attempts += 1
            try:
                await self._transfer_handler(t)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self._metrics is not None:
                    self._metrics.failed(TaskCategory.TRANSFER, t)
                log.info(
                    "transfer task %s of %s failed (%s); retrying",
                    TransferKind(t.kind).name,
                    t.workflow_id,
                    e,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._metrics is not None:
                self._metrics.transfer_handled(t, started, attempts)
            ack()
            return

    def hand_over(self, shard_id: int, t: Task) -> bool:
        """Gives a workflow task that lives only in memory (see ``HistoryEngine._hold_write``) to a
        poller waiting right now; False if none is. It has no row, so nothing to acknowledge."""
        a = t.args
        task = MatchTask(t.namespace_id, t.workflow_id, t.run_id, a["s"], a["a"], ack=_nothing_to_ack)
        if "n" in a:
            task.normal_queue, task.sticky_timeout_ms = a["n"], a["st"]
        return self._matching.hand_over(t.namespace_id, a["q"], WORKFLOW_TASK, task)

    def offer(self, task_type: int, t: Task, ack: Callable[[], None]) -> None:
        a = t.args
        task = MatchTask(t.namespace_id, t.workflow_id, t.run_id, a["s"], a["a"], ack=ack)
        if "n" in a:  # a workflow task for a sticky queue (see ``Mutation.schedule_workflow_task``)
            task.normal_queue, task.sticky_timeout_ms = a["n"], a["st"]
        self._matching.add_task(t.namespace_id, a["q"], task_type, task)

    # -- timers ----------------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while not self._stopping:
            now = self._now_us()
            while self._timers and self._timers[0][0] <= now:
                _, task_id, shard_id, task = heapq.heappop(self._timers)
                if task_id < 0 and task_id in self._obsolete:
                    self._obsolete.discard(task_id)
                    continue
                await self._timer_slots.acquire()
                bg = asyncio.create_task(self._fire(shard_id, task))
                self._background.add(bg)
                bg.add_done_callback(self._background.discard)
            self._timer_changed.clear()
            if self._timers:
                sleeper = asyncio.ensure_future(self._sleep_for_timer(self._timers[0][0]))
            else:
                sleeper = None
            changed = asyncio.ensure_future(self._timer_changed.wait())
            waits = [changed] if sleeper is None else [changed, sleeper]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def _sleep_for_timer(self, due: int) -> None:
        # The clock learns the deadline as this starts (a loop turn after the loop asked for it):
        # until then ``in_flight`` counts the earliest timer as unarmed.
        self._armed_for = due
        await self._sleep_until(due)

    async def _fire(self, shard_id: int, task: Task) -> None:
        key = _timer_key(task)
        if logcontext.enabled():  # this task's own context: what its lines are about
            ids = {"namespace_id": task.namespace_id, "workflow_id": task.workflow_id, "run_id": task.run_id}
            logcontext.bind(shard_id=shard_id, **ids)
        started = time.perf_counter()
        try:
            await self._timer_handler(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            if self._metrics is not None:
                self._metrics.failed(TaskCategory.TIMER, task)
            # Retried later: the timer is re-queued a second from now, its row kept.
            log.exception("timer task %s of %s failed; retrying", TimerKind(task.kind).name, task.workflow_id)
            # Due later, but acknowledged under the key it was tracked by (its row's).
            retry = Task(
                task.kind,
                task.namespace_id,
                task.workflow_id,
                task.run_id,
                {**task.args, _ACK_AT: key[0]},
                self._now_us() + 1_000_000,
                task.task_id,
            )
            heapq.heappush(self._timers, (retry.visibility_time, retry.task_id, shard_id, retry))
            self._timer_changed.set()
            return
        finally:
            self._timer_slots.release()
        if self._metrics is not None:
            self._metrics.timer_fired(task, started)
        # A timer whose handler handed a task to matching is acknowledged by that task's start;
        # a volatile one has nothing to acknowledge.
        if task.task_id >= 0 and not task.args.get("_deferred_ack"):
            self._timer_acks[shard_id].done(key)

    # -- the timer window ---------------------------------------------------------------------------

    def _note_unloaded(self, due: int | None) -> None:
        if due is not None and (self._next_unloaded is None or due < self._next_unloaded):
            self._next_unloaded = due
            self._unloaded_changed.set()

    async def _first_unloaded(self, shard: ShardContext) -> int | None:
        """When the shard's earliest stored timer at or after the window's end is due."""
        rows = await shard.stores.executions.get_tasks(
            shard.shard_id, TaskCategory.TIMER, min_key=(self._loaded_until, 0), max_key=MAX_KEY, batch_size=1
        )
        return rows[0].visibility_time if rows else None

    async def _timer_window_loop(self) -> None:
        """Loads the stored timers that came within the window, half a window before the earliest
        of them is due. It sleeps on the engine's clock, so the time-skipping environment jumps
        straight to the next load, and from there to the timer."""
        while not self._stopping:
            self._unloaded_changed.clear()
            due = self._next_unloaded
            if due is not None and due - self._timer_window_us // 2 <= self._now_us():
                try:
                    await self._load_timer_window()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("loading the next timer window failed; retrying")
                    self._note_unloaded(self._now_us())  # each shard resumes from its own cap
                    await asyncio.sleep(1.0)
                continue
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._unloaded_changed.wait())]
            if due is not None:
                waits.append(asyncio.ensure_future(self._sleep_until(due - self._timer_window_us // 2)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def _load_timer_window(self) -> None:
        self._loading = True
        try:
            await self._read_timer_window()
        finally:
            self._loading = False

    async def _read_timer_window(self) -> None:
        # Raised first: a timer written while the window is read is taken by ``on_new_tasks``
        # (its key is reserved meanwhile, so the read below skips it if it sees the row too).
        self._loaded_until = max(self._loaded_until, self._now_us() + self._timer_window_us)
        new_end = (self._loaded_until, 0)
        self._next_unloaded = None
        for shard_id, shard in self._shards.items():
            if shard.lost:
                continue
            acks = self._timer_acks[shard_id]
            # Each shard reads on from what it has loaded (its cap), so a shard whose read failed
            # last time catches up here.
            loaded = await shard.read_tasks_from(TaskCategory.TIMER, acks.cap or (0, 0), new_end)
            for t in loaded:
                key = (t.visibility_time, t.task_id)
                if key not in acks.outstanding:
                    acks.add(key)
                    heapq.heappush(self._timers, (t.visibility_time, t.task_id, shard_id, t))
            # Only now may the ack level pass the old end: the window's timers are tracked.
            acks.cap = new_end
            self._note_unloaded(await self._first_unloaded(shard))
        self._timer_changed.set()

    def timer_ack(self, shard_id: int, task: Task) -> Callable[[], None]:
        """For timer handlers that pass work on to matching: acknowledge when it is started."""
        task.args["_deferred_ack"] = True
        key = _timer_key(task)
        acks = self._timer_acks[shard_id]
        return lambda: acks.done(key)

    # -- the visibility outbox --------------------------------------------------------------------------

    async def visibility_published(self, timeout_s: float) -> bool:
        """Waits until every visibility update handed to the outbox so far has been published
        (the linger included; later ones are not waited for); False if ``timeout_s`` passed
        first (the sink is failing)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        target = self._vis_handed
        while self._vis_published < target:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    async def _visibility_loop(self) -> None:
        backoff = 0.05
        while not self._stopping:
            await self._vis_ready.wait()
            if self.visibility_linger_s:
                await asyncio.sleep(self.visibility_linger_s)
            self._vis_ready.clear()
            while self._vis_pending:
                batch, self._vis_pending = self._vis_pending[:500], self._vis_pending[500:]
                started = time.perf_counter()
                self._vis_busy = len(batch)
                try:
                    if self._visibility_handler is not None:
                        await self._visibility_handler([t for _, t in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    # Keep the batch (its rows stay too) and try again: the outbox backs up, never skips.
                    log.warning(
                        "publishing %d visibility updates failed (%s); retrying in %.1f s",
                        len(batch),
                        e,
                        backoff,
                    )
                    self._vis_busy = 0  # back on the pending list
                    self._vis_pending = batch + self._vis_pending
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                finally:
                    self._vis_busy = 0
                backoff = 0.05
                self._vis_published += len(batch)
                for shard_id, t in batch:
                    self._vis_acks[shard_id].done((0, t.task_id))
                if self._metrics is not None:
                    self._metrics.batch_done(TaskCategory.VISIBILITY, batch, started)

    # -- the replication outbox --------------------------------------------------------------------------

    async def _replication_loop(self) -> None:
        """Publishes replication tasks in the order they were written (per shard that is the order
        of each run's writes), acknowledging them once the bus acknowledged them. A failed publish
        is retried with backoff, never skipped: a standby must see every batch of a run."""
        backoff = 0.05
        while not self._stopping:
            await self._repl_ready.wait()
            if self.replication_linger_s:
                # Let a few more writes join: one durable append to the bus for many of them
                # (as Kafka's linger.ms); on a disk where fsync dominates this is the difference.
                await asyncio.sleep(self.replication_linger_s)
            self._repl_ready.clear()
            while self._repl_pending:
                batch, self._repl_pending = self._repl_pending[:500], self._repl_pending[500:]
                started = time.perf_counter()
                self._repl_busy = len(batch)
                try:
                    if self.replication_handler is not None:
                        await self.replication_handler([t for _, t in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    log.warning(
                        "publishing %d replication tasks failed (%s); retrying in %.1f s",
                        len(batch),
                        e,
                        backoff,
                    )
                    self._repl_busy = 0  # back on the pending list
                    self._repl_pending = batch + self._repl_pending
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                finally:
                    self._repl_busy = 0
                backoff = 0.05
                for shard_id, t in batch:
                    t.payload = None
                    self._repl_acks[shard_id].done((0, t.task_id))
                if self._metrics is not None:
                    self._metrics.batch_done(TaskCategory.REPLICATION, batch, started)

    def replication_backlog(self) -> int:
        """Replication tasks written and not yet acknowledged by the bus."""
        return sum(len(a.outstanding) for a in self._repl_acks.values())

    # -- ack levels ------------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._flush_interval_s)
            try:
                await self.flush_ack_levels()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("saving queue ack levels failed; will retry")

    async def flush_ack_levels(self) -> None:
        """Saves each shard's ack levels, then deletes the rows below them. The save is fenced by
        the shard's range_id and comes first, so a host that lost the shard (and does not know it
        yet) fails there and never deletes rows that now belong to the new owner."""
        for shard_id, shard in self._shards.items():
            if shard.lost:
                continue
            trackers = {
                "transfer": (TaskCategory.TRANSFER, self._transfer[shard_id], 1),
                "timer": (TaskCategory.TIMER, self._timer_acks[shard_id], 0),
                "visibility": (TaskCategory.VISIBILITY, self._vis_acks[shard_id], 1),
                "replication": (TaskCategory.REPLICATION, self._repl_acks[shard_id], 1),
            }
            moved = {}
            for name, (_, tracker, _part) in trackers.items():
                # The timer level stays a little behind the present, not at the loaded window's
                # end: timers written from now on are due from about now on (their time was taken
                # when their change began), and a restart must read them.
                limit = (self._now_us() - TIMER_LEVEL_LAG_US, 0) if name == "timer" else None
                new = tracker.compute(limit)
                if new > tracker.persisted_level:
                    moved[name] = new
                    # Before the save's await: a timer reserved meanwhile sees the new floor.
                    tracker.floor = max(tracker.floor, new)
            if not moved:
                continue
            try:
                await shard.save_ack_levels({name: level[trackers[name][2]] for name, level in moved.items()})
            except ShardOwnershipLostError:
                continue
            for name, new in moved.items():
                category, tracker, _ = trackers[name]
                await shard.stores.executions.complete_tasks(
                    shard_id, category, min_key=tracker.persisted_level, max_key=new
                )
                tracker.persisted_level = new

    def next_timer_time(self) -> int | None:
        return self._timers[0][0] if self._timers else None

    def in_flight(self) -> int:
        """Work under way: timers being fired, transfer tasks being handled, and a timer window that
        is due or being read (the time-skipping environment must not move the clock past timers
        about to be loaded)."""
        n = len(self._background)
        if self._timer_changed.is_set() or (self._timers and self._armed_for != self._timers[0][0]):
            # Timers the loop has not armed a sleep for yet: the time-skipping clock would not
            # know their deadline and could skip past them (they would then fire together).
            n += 1
        due = self._next_unloaded
        if self._loading or (due is not None and due - self._timer_window_us // 2 <= self._now_us()):
            n += 1
        return n
