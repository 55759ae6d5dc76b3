"""Matching's backlog in the store: tasks that no poller took in time, written to the task queue's
``tasks`` rows under the queue's lease and read back in order, so a large backlog does not live in
memory.

Terms. The tasks of one queue, oldest first, are in four places at any moment:

    buffer    tasks read back from the store, ready to hand out (at most ``read_batch`` or so)
    store     rows with ``read_level < task_id <= write_level`` (not held in memory at all)
    spilling  the batch being written right now
    memory    tasks offered since (``TaskQueue.tasks``), each still backed by its source: the
              shard's transfer row (or timer row) stays unacknowledged until the task is started,
              found stale, or written here

A poll takes from the first place that holds a task, and waits rather than take from memory while
the store or a write in flight holds older ones: order holds across the memory/store boundary.

When to spill (``BacklogConfig``): a task that a waiting poller takes at once never reaches this
module, so the fast path costs no store access. A task that is queued is written once it has waited
``spill_after_s`` (its transfer row is then acknowledged, so the shard's ack level moves on and the
row is trimmed), or at once when more than ``max_in_memory`` tasks are queued in memory. Sticky
queues (one worker's; a task falls back to the normal queue within seconds) and queries (answered
within their deadline, or not at all) stay in memory.

Durability: a task is acknowledged to its source only after the write that holds it committed, so
a crash loses nothing; a crash between that write and the shard's next ack-level save offers the
task a second time (from the transfer row) besides the stored copy. A duplicate is harmless: the
second start of a task already started is refused as stale, and the poll moves on.

Ack level: every task read back is *outstanding* until its start is durable (or it proved stale);
the ack level is just below the lowest outstanding id (or the read level when none is). It is saved
with ``update_task_queue`` at most every ``ack_flush_s`` and only then are the rows at or below it
deleted, so a host that lost the lease never trims the new owner's rows.

Lease: writes go through ``lease_task_queue``'s ``range_id``; task ids are ``range_id << 20`` plus a
sequence, so a newer lease always writes higher ids. A lost lease (``TaskQueueLeaseLostError``, a
second host leased the queue) drops what was read but not started (it is still in the store), starts
a new generation (acks of the old one are ignored, so a start the old generation handed out is read
again and refused as stale), and leases again: reading restarts from the stored ack level.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cadenza.engine.persistence.errors import TaskQueueLeaseLostError
from cadenza.engine.persistence.protocols import QueuedTask, TaskQueueInfo, TaskQueueStore

if TYPE_CHECKING:
    from cadenza.engine.matching import MatchTask, TaskQueue

log = logging.getLogger("cadenza.matching")

RANGE_BITS = 20
"""Task ids per lease: ``range_id << RANGE_BITS`` up to the next range; a lease that used them up
is renewed (a higher ``range_id``), so ids keep increasing."""
MAX_TASK_ID = (1 << 63) - 1

_encode_row = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class BacklogConfig:
    """When matching writes queued tasks to the store and how it reads them back."""

    spill_after_s: float = 0.5
    """A task queued this long without a poller taking it is written to the store."""
    max_in_memory: int = 1000
    """More tasks than this queued in memory on one queue: the oldest are written at once."""
    write_batch: int = 200
    """Tasks per store write: one conditional batch on Cassandra, whose cost hardly depends on its
    size (about 45 ms for 30 rows or 1,000 on the dev node), kept well below its 50 KB limit."""
    read_batch: int = 200
    """Tasks read back per store read; the read buffer holds about this many."""
    ack_flush_s: float = 1.0
    """How often a queue's ack level is saved and the rows below it deleted."""

    def __post_init__(self) -> None:
        for name in ("spill_after_s", "ack_flush_s"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"BacklogConfig.{name} must be >= 0, got {value!r}")
        for name in ("max_in_memory", "write_batch", "read_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BacklogConfig.{name} must be an integer >= 1, got {value!r}")


def encode_task(task: MatchTask, created_us: int) -> bytes:
    """A stored task: the run, the scheduled event and attempt, and when it was created (wall
    clock, for the schedule-to-start latency of a task read back by a later process)."""
    return _encode_row(
        [task.workflow_id, task.run_id, task.scheduled_event_id, task.attempt, created_us]
    ).encode()


class Backlog:
    """The store side of one (normal) task queue. One pump task does its store work in turn
    (lease, read, write, ack-level save), so no two of them race; the queue calls in from the
    event loop between them."""

    def __init__(
        self,
        queue: TaskQueue,
        store: TaskQueueStore,
        key: tuple[str, str, int],
        config: BacklogConfig,
        *,
        now: Callable[[], float],
        now_us: Callable[[], int],
        ack_level: int = 0,
        rows_beyond: bool = False,
    ) -> None:
        self._queue = queue
        self._store = store
        self.namespace_id, self.name, self.task_type = key
        self._config = config
        self._now = now
        self._now_us = now_us
        self.buffer: collections.deque[MatchTask] = collections.deque()
        self.spilling: list[MatchTask] = []
        self.outstanding: set[int] = set()
        """Ids read back (buffered or handed out) whose start is not durable yet."""
        self.read_level = ack_level
        self.write_level = ack_level
        self.rows_beyond = rows_beyond
        """The store may hold rows this process did not write (above ``read_level``): read up
        to the end until a short read proves it has none (after a restart or a lost lease)."""
        self.persisted_ack = ack_level
        self._trimmed = ack_level
        """Rows at or below this are deleted; it trails ``persisted_ack`` while a trim is pending
        (a trim cancelled by a stop is finished by the stop's flush)."""
        self.generation = 0
        self._lease: TaskQueueInfo | None = None
        self._relevel = False
        """The lease was lost: the levels are taken from the stored row at the next lease."""
        self._next_id = 0
        self._id_limit = 0
        self._losses = 0
        """Lost leases in a row: the first is leased again at once, the next ones back off (two
        hosts that both serve the queue must not take it from each other in a tight loop)."""
        self._last_flush = now()
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._pump: asyncio.Task[None] | None = None
        self.written = 0
        """Tasks written to the store by this process (for tests and benchmarks)."""

    # -- called by the queue ------------------------------------------------------------------------

    def unread(self) -> bool:
        return self.rows_beyond or self.read_level < self.write_level

    def blocks_memory(self) -> bool:
        """True while older tasks than the queue's memory ones are here (buffered, stored or being
        written): a poll must not take a memory task before them."""
        return bool(self.buffer or self.spilling) or self.unread()

    def held(self) -> int:
        return len(self.buffer) + len(self.spilling)

    def take(self) -> MatchTask | None:
        task = self.buffer.popleft() if self.buffer else None
        if len(self.buffer) <= self._config.read_batch // 2 and self.unread():
            self.wake()
        return task

    def queued(self) -> None:
        """A task was queued in memory: write now if memory holds too many, else arm the timer."""
        if len(self._queue.tasks) > self._config.max_in_memory:
            self.wake()
        elif self._timer is None:
            self._arm()

    def wake(self) -> None:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(
                self._run(), name=f"cadenza-matching-{self.name}-{self.task_type}"
            )
        self._wake.set()

    async def stop(self) -> None:
        """Stops the pump and saves the ack level (best effort: a failed save re-delivers)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        if self.spilling:  # cancelled mid-write: they were never acknowledged to their source
            self._queue.tasks.extendleft(reversed(self.spilling))
            self.spilling = []
        try:
            await self._flush(force=True)
        except Exception as e:
            log.info(
                "saving the ack level of task queue %s failed (%s); tasks may be delivered again",
                self.name,
                e,
            )

    # -- the pump -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while await self._step():
                    pass
                delay = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("task queue %s backlog: %s; retrying in %.2f s", self.name, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._wake.set()
            self._arm()

    async def _step(self) -> bool:
        """Does one piece of store work, the most urgent first; False when there is none."""
        if self._relevel and self._lease is None:
            await self._renew_lease()
            return True
        if self.unread() and len(self.buffer) <= self._config.read_batch // 2:
            await self._read()
            self._queue.feed()
            return True
        if self._spill_due():
            await self._spill()
            self._queue.feed()
            return True
        return await self._flush(force=False)

    def _arm(self) -> None:
        """One timer for the next time-based piece of work: the oldest memory task's spill or the
        ack level's save."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._now()
        due: float | None = None
        tasks = self._queue.tasks
        if tasks and not tasks[0].normal_queue:
            due = tasks[0].created_at + self._config.spill_after_s
        if self._ack_level() > self.persisted_ack:
            flush_at = self._last_flush + self._config.ack_flush_s
            due = flush_at if due is None else min(due, flush_at)
        if due is not None:
            self._timer = asyncio.get_running_loop().call_later(max(due - now, 0.0), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.wake()

    # -- reading ------------------------------------------------------------------------------------

    async def _read(self) -> None:
        from cadenza.engine.matching import MatchTask

        want = self._config.read_batch - len(self.buffer)
        rows = await self._store.get_tasks(
            self.namespace_id,
            self.name,
            self.task_type,
            min_task_id=self.read_level,
            max_task_id=MAX_TASK_ID if self.rows_beyond else self.write_level,
            batch_size=want,
        )
        generation = self.generation
        now, now_us = self._now(), self._now_us()
        for r in rows:
            wid, rid, scheduled, attempt, created_us = json.loads(r.data)
            task = MatchTask(
                self.namespace_id,
                wid,
                rid,
                scheduled,
                attempt,
                ack=functools.partial(self._done, generation, r.task_id),
                task_queue=self.name,
                task_type=self.task_type,
                created_at=now - max(now_us - created_us, 0) / 1e6,
            )
            self.outstanding.add(r.task_id)
            self.buffer.append(task)
        if rows:
            self.read_level = rows[-1].task_id
        if len(rows) < want:
            # Everything up to here is read: ids skipped by a failed write are gaps, not rows.
            self.read_level = self.write_level = max(self.read_level, self.write_level)
            self.rows_beyond = False

    def _done(self, generation: int, task_id: int) -> None:
        """A task read back was started durably or proved stale. Acks of an older generation (the
        lease was lost since) are ignored: that task is read again from the stored ack level."""
        if generation == self.generation:
            self.outstanding.discard(task_id)
            if self._timer is None and self._pump is not None:
                self._arm()

    # -- writing ------------------------------------------------------------------------------------

    def _spill_due(self) -> bool:
        tasks = self._queue.tasks
        if not tasks or tasks[0].normal_queue:
            return False
        return (
            len(tasks) > self._config.max_in_memory
            or self._now() - tasks[0].created_at >= self._config.spill_after_s
        )

    async def _spill(self) -> None:
        tasks = self._queue.tasks
        config = self._config
        now = self._now()
        excess = len(tasks) - config.max_in_memory
        batch: list[MatchTask] = []
        while tasks and len(batch) < config.write_batch:
            head = tasks[0]
            if head.normal_queue or (len(batch) >= excess and now - head.created_at < config.spill_after_s):
                break
            batch.append(tasks.popleft())
        if not batch:
            return
        self.spilling = batch
        try:
            if self._lease is None or self._next_id + len(batch) > self._id_limit:
                await self._renew_lease()
            assert self._lease is not None
            first = self._next_id
            self._next_id += len(batch)
            now_us = self._now_us()
            rows = [
                QueuedTask(first + i, encode_task(t, now_us - int((now - t.created_at) * 1e6)))
                for i, t in enumerate(batch)
            ]
            await self._store.create_tasks(self._lease, rows)
        except BaseException as e:
            # Not written (or not known to be): back to the head of memory, still backed by their
            # source. Ids used by a write that did land are read as rows, a duplicate at worst.
            if self.spilling is batch:
                self.spilling = []
                tasks.extendleft(reversed(batch))
            if isinstance(e, TaskQueueLeaseLostError):
                self._lost(e)
                return
            raise
        self.spilling = []
        self.written += len(batch)
        self._losses = 0
        caught_up = not self.rows_beyond and self.read_level == self.write_level
        self.write_level = rows[-1].task_id
        room = config.read_batch - len(self.buffer) if caught_up else 0
        generation = self.generation
        for i, (t, row) in enumerate(zip(batch, rows, strict=True)):
            t.ack()  # the store holds it now: its transfer row is done with
            if i < room:
                # The reader was caught up: keep the first ones as the read buffer (no read back).
                t.ack = functools.partial(self._done, generation, row.task_id)
                self.outstanding.add(row.task_id)
                self.buffer.append(t)
                self.read_level = row.task_id

    async def _renew_lease(self) -> None:
        if self._losses > 1:
            await asyncio.sleep(min(0.5 * 2 ** (self._losses - 2), 10.0))
        info = await self._store.lease_task_queue(self.namespace_id, self.name, self.task_type)
        if info.range_id >= 1 << (63 - RANGE_BITS):
            raise OverflowError(f"task queue {self.name}: range_id {info.range_id} leaves no task ids")
        self._lease = info
        self._next_id = (info.range_id << RANGE_BITS) + 1
        self._id_limit = ((info.range_id + 1) << RANGE_BITS) - 1
        if self._relevel:
            self._relevel = False
            self.read_level = self.write_level = self.persisted_ack = info.ack_level
            self._trimmed = min(self._trimmed, info.ack_level)
            self.rows_beyond = True

    def _lost(self, e: TaskQueueLeaseLostError) -> None:
        log.warning("task queue %s: %s; serving it from the store again after a new lease", self.name, e)
        self.generation += 1
        self.buffer.clear()
        self.outstanding.clear()
        self._lease = None
        self._relevel = True
        self._losses += 1
        self.wake()

    # -- the ack level ------------------------------------------------------------------------------

    def _ack_level(self) -> int:
        return min(self.outstanding) - 1 if self.outstanding else self.read_level

    async def _flush(self, *, force: bool) -> bool:
        if self._relevel:
            return False
        level = self._ack_level()
        if level <= self.persisted_ack:
            return await self._trim()
        if not force and self._now() - self._last_flush < self._config.ack_flush_s:
            return False
        self._last_flush = self._now()
        if self._lease is None:
            await self._renew_lease()
            assert self._lease is not None
        self._lease.ack_level = level
        try:
            await self._store.update_task_queue(self._lease)
        except TaskQueueLeaseLostError as e:
            self._lost(e)
            return True
        self.persisted_ack = level
        self._losses = 0
        await self._trim()
        return True

    async def _trim(self) -> bool:
        """Deletes the rows at or below the saved ack level, if a trim is still owed."""
        level = self.persisted_ack
        if self._trimmed >= level:
            return False
        await self._store.complete_tasks_less_than(self.namespace_id, self.name, self.task_type, level + 1)
        self._trimmed = max(self._trimmed, level)
        return True
