"""The history engine: every operation on a run, each one "load → apply rule → persist with condition".

Operations are small functions over a ``Mutation`` (the run's state plus the tasks the change causes);
``HistoryEngine.mutate`` does the loading, locking, persisting and retrying for all of them, so each
operation holds only its rule. Workflow-task and activity rules live in ``workflow_tasks`` and
``activities``; this module holds starting, signalling, cancelling, terminating and reading runs.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from cadenza.engine import logcontext
from cadenza.engine.clock import Clock
from cadenza.engine.errors import (
    InvalidArgumentError,
    ServiceError,
    UnavailableError,
    WorkflowAlreadyStartedError,
    WorkflowCompletedError,
    WorkflowNotFoundError,
)
from cadenza.engine.history import limits, signals
from cadenza.engine.history import reset as resetting
from cadenza.engine.history import updates as updating
from cadenza.engine.history.chaining import cron_backoff_ms
from cadenza.engine.history.flushes import FlushSchedule, start_still_pending
from cadenza.engine.history.mutable_state import ExecutionInfo, MutableState
from cadenza.engine.history.mutation import Mutation, close_run, require_running
from cadenza.engine.history.shard import Deferred, NextRun, RunContext, ShardContext, TaskLedger, shard_for
from cadenza.engine.history.signals import PendingSignal
from cadenza.engine.history.tasks import (
    MutationTasks,
    Task,
    TimerKind,
    TransferKind,
    VisibilityKind,
)
from cadenza.engine.matching import MatchTask, expire
from cadenza.engine.namespaces import NamespaceRegistry
from cadenza.engine.persistence.errors import (
    ConditionFailedError,
    CurrentWorkflowConditionFailedError,
    EntityNotFoundError,
    ShardOwnershipLostError,
)
from cadenza.engine.persistence.protocols import (
    CreateMode,
    CurrentExecution,
    ExecutionState,
    ExecutionStatus,
    Stores,
)
from cadenza.schemas.events import EventType
from cadenza.schemas.ids import new_id
from cadenza.schemas.service import StartWorkflowRequest

log = logging.getLogger("cadenza.history")

FOLLOW_RUNS_FOR_S = 30.0
"""How long a request addressed by workflow id follows its chain of runs before it gives up."""

T = TypeVar("T")

DAY_US = 86_400_000_000
STOP_FLUSH_CONCURRENCY = 64
"""Runs written at once when a stopping host writes what it holds only in memory."""


@dataclass(slots=True, frozen=True)
class ParentRef:
    """The parent of a child run, as its WorkflowExecutionStarted event records it."""

    namespace: str
    workflow_id: str
    run_id: str
    initiated_event_id: int


class HistoryEngine:
    metrics: Any = None
    """``cadenza.metrics.ServerMetrics`` when the host records metrics: closing runs are counted."""

    def __init__(
        self,
        stores: Stores,
        clock: Clock,
        *,
        num_shards: int,
        host: str,
        on_new_tasks: Callable[[int, MutationTasks], None],
        on_volatile_timer: Callable[[int, Task], None],
        ledger: TaskLedger | None = None,
        speculative_flush_s: float = 5.0,
        on_volatile_timers_done: Callable[[list[Task]], None] | None = None,
        hand_over: Callable[[int, Task], bool] | None = None,
        held_flush_s: float = 0.25,
        namespaces: NamespaceRegistry | None = None,
    ) -> None:
        self.stores = stores
        self.clock = clock
        self.num_shards = num_shards
        self.host = host
        self.shards: dict[int, ShardContext] = {}
        self._on_new_tasks = on_new_tasks
        self._on_volatile_timer = on_volatile_timer
        self._on_volatile_timers_done = on_volatile_timers_done
        self._ledger = ledger
        self._hand_over = hand_over
        self._start_flushes = FlushSchedule(speculative_flush_s, self._start_flush)
        self._held_flushes = FlushSchedule(held_flush_s, self._start_flush)
        # Runs holding a change, for ``stop``; weak, since a dropped state drops its change too.
        self._held: weakref.WeakSet[RunContext] = weakref.WeakSet()
        self._flushes: set[asyncio.Task[None]] = set()
        self._signal_queues: dict[tuple[str, str, str], list[PendingSignal]] = {}
        self.updates = updating.Updates(self)
        """Workflow updates admitted and not completed yet (see ``updates``)."""
        self.namespaces = namespaces
        """Decides the failover version of every write, and refuses writes this cluster is standby
        for (see ``NamespaceRegistry.write_version``); None: one cluster, version 0."""
        self.stopping = False
        """Set once the host stops (``end_long_polls``): long polls answer at once."""

    async def start(self) -> None:
        for shard_id in range(self.num_shards):
            shard = ShardContext(
                shard_id,
                self.stores,
                self.clock,
                self.host,
                on_new_tasks=self._on_new_tasks,
                ledger=self._ledger,
                replicates=self.namespaces.replicates if self.namespaces is not None else None,
                retention_us=self.retention_us,
            )
            await shard.acquire()
            self.shards[shard_id] = shard

    def retention_us(self, namespace_id: str) -> int | None:
        """How long the namespace keeps a closed run, from the cache the write path keeps warm
        (``writable``); None (kept forever) without namespaces, for an unknown one, or for a
        retention of 0 days."""
        info = self.namespaces.cached_by_id(namespace_id) if self.namespaces is not None else None
        if info is None or info.retention_days <= 0:
            return None
        return info.retention_days * DAY_US

    def shard(self, namespace_id: str, workflow_id: str) -> ShardContext:
        shard = self.shards[shard_for(namespace_id, workflow_id, self.num_shards)]
        if shard.lost:
            raise UnavailableError(f"shard {shard.shard_id} is no longer owned by this host")
        return shard

    # -- the one mutation path -------------------------------------------------------------------

    async def run_context(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> tuple[ShardContext, RunContext]:
        shard = self.shard(namespace_id, workflow_id)
        if not run_id:
            try:
                run_id = await shard.current_run_id(namespace_id, workflow_id)
            except EntityNotFoundError:
                raise WorkflowNotFoundError(
                    f"workflow not found: workflow_id={workflow_id!r}", workflow_id=workflow_id
                ) from None
        return shard, shard.run_context((namespace_id, workflow_id, run_id))

    async def load(self, shard: ShardContext, ctx: RunContext) -> MutableState:
        try:
            return await shard.load_state(ctx)
        except EntityNotFoundError:
            _, wid, rid = ctx.key
            raise WorkflowNotFoundError(
                f"workflow not found: workflow_id={wid!r} run_id={rid!r}", workflow_id=wid, run_id=rid
            ) from None

    async def mutate(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        rule: Callable[[Mutation], T],
        *,
        defer: Deferred | None = None,
        hold: bool = False,
    ) -> T:
        """Applies ``rule`` to the run and persists the result atomically, retrying lost conditions.

        A rule raises a ``ServiceError`` to refuse, and every rule checks before it changes anything,
        so a refusal leaves the cached state as it was and writes nothing. Any other exception is a
        bug: the state, which may be half-changed, is dropped and reloaded.

        A rule that starts a task marks the mutation ``speculative``: nothing is written. Its timers
        run from memory, and ``defer`` (the acknowledgement of the task that offered the start) waits
        for the run's next write, which carries the start to disk along with whatever comes next;
        if the state is dropped first, the task is offered again. Hello world writes four times
        instead of seven this way (three with held completions, below). A start that lasts longer
        than ``speculative_flush_s`` is written on its own, so acknowledgement levels keep moving
        under long activities.

        ``hold``: the change may ride on the workflow task it schedules (see ``_hold_write``); the
        call still returns only once the change is durable."""
        shard, ctx = await self.run_context(namespace_id, workflow_id, run_id)
        if logcontext.enabled() and logcontext.current().get("workflow_id") == workflow_id:
            # A call or task about this run: its lines name the shard too (a loop's stay unbound).
            logcontext.bind(shard_id=shard.shard_id, run_id=run_id)
        await self.writable(namespace_id)
        written: asyncio.Future[None] | None = None
        for _ in range(5):
            async with ctx.lock:
                ms = await self.load(shard, ctx)
                ms.current_version = self.write_version(namespace_id, ms.info.last_write_version)
                was_running = self.metrics is not None and ms.is_running
                unwritten = len(ms.pending_events)
                m = Mutation(ms, MutationTasks(), self.clock.now_us())
                if ms.is_running and (ms.info.cron_schedule or ms.info.retry_policy):
                    m.started_attributes = (await shard.load_events(ctx))[0].attributes
                try:
                    result = rule(m)
                except ServiceError:
                    raise
                except BaseException:
                    shard.invalidate(ctx)
                    raise
                if m.noop:
                    if defer is not None:
                        defer.ack()  # a duplicate offer of a task that is already started
                    return result
                if m.speculative:
                    assert len(ms.pending_events) == unwritten, "a speculative change may not write"
                    self._hold(shard, ctx, m, defer)
                    self.updates.after_write(m)
                    return result
                if hold and self._can_hold(ctx, m) and self._hand_over_task(shard, m):
                    written = self._hold_write(ctx, m)
                    break
                updating.durable(m)
                limits.enforce_history_limits(m)
                self._carry_held(ctx, m)
                new_run = None
                if m.next_run is not None:
                    next_state, next_tasks = m.next_run
                    i = next_state.info
                    new_run = NextRun(
                        shard.run_context((i.namespace_id, i.workflow_id, i.run_id)), next_state, next_tasks
                    )
                volatile_timers = ctx.deferred_timers
                try:
                    await shard.update_run(
                        ctx, ms, m.tasks, still_pending=start_still_pending, new_run=new_run
                    )
                except ConditionFailedError:
                    continue
                except ShardOwnershipLostError as e:
                    raise UnavailableError(str(e)) from e
                if volatile_timers and self._on_volatile_timers_done is not None:
                    self._on_volatile_timers_done(volatile_timers)
                if was_running and not ms.is_running:
                    self.metrics.workflow_closed(ms.info, ms.next_event_id - 1)
                self.updates.after_write(m)
                return result
        if written is None:
            raise UnavailableError(f"workflow {workflow_id!r}: too many concurrent updates, try again")
        await written
        self.updates.after_write(m)
        return result

    async def ensure_namespace(self, namespace_id: str) -> None:
        """Caches the namespace, so ``write_version`` can decide without a read."""
        ns = self.namespaces
        if ns is not None and ns.cached_by_id(namespace_id) is None:
            await ns.get_by_id(namespace_id)

    async def writable(self, namespace_id: str) -> None:
        """Caches the namespace, and holds the write while it is handed over to another cluster."""
        await self.ensure_namespace(namespace_id)
        ns = self.namespaces
        if ns is not None and ns.in_handover(namespace_id):
            await ns.wait_writable(namespace_id)

    def write_version(self, namespace_id: str, last_write_version: int = 0) -> int:
        if self.namespaces is None:
            return 0
        return self.namespaces.write_version(namespace_id, last_write_version)

    def _hold(self, shard: ShardContext, ctx: RunContext, m: Mutation, defer: Deferred | None) -> None:
        assert not m.tasks.transfer, "a speculative change may not write"
        if defer is not None:
            ctx.deferred.append(defer)
        for t in m.tasks.timer:
            ctx.deferred_timers.append(t)
            self._on_volatile_timer(shard.shard_id, t)
        self._start_flushes.add(ctx)

    # -- held writes -------------------------------------------------------------------------------

    def _can_hold(self, ctx: RunContext, m: Mutation) -> bool:
        """A change whose only task is the workflow task it schedules, on a run holding nothing."""
        t = m.tasks
        return (
            self._hand_over is not None
            and ctx.held_task is None
            and m.ms.is_running
            and m.next_run is None
            and not t.timer
            and not t.visibility
            and not t.replication
            and len(t.transfer) == 1
            and t.transfer[0].kind == TransferKind.WORKFLOW_TASK
        )

    def _hand_over_task(self, shard: ShardContext, m: Mutation) -> bool:
        """Offers the scheduled workflow task from memory to a poller waiting right now. With none
        waiting the task would sit in a queue while the change waits unwritten, holding up its
        caller (an activity worker's slot): then the change is written as usual."""
        assert self._hand_over is not None
        return self._hand_over(shard.shard_id, m.tasks.transfer[0])

    def _hold_write(self, ctx: RunContext, m: Mutation) -> asyncio.Future[None]:
        """Keeps the change in memory and offers the workflow task it scheduled straight away.

        An activity's completion schedules the workflow task that reacts to it; written alone, it
        costs a durable write before that task can even start. Held instead, it is written by the
        run's next write, usually that task's completion: one write per activity instead of two
        (hello world: three instead of four). The caller is answered only when the change is
        durable, so nothing acknowledged is lost; a crash before that loses an unacknowledged
        completion, and the activity runs again (activities are at least once). A change is held
        only when a poller is waiting to take its workflow task from memory at once
        (``_hand_over_task``); the task's durable transfer task is written by the first write that
        finds it still unstarted (``_carry_held``), and a run that gets no write within
        ``held_flush_s`` is written on its own. If the state is dropped first, the caller gets
        ``UnavailableError``."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()

        def ack() -> None:
            if not written.done():
                written.set_result(None)

        def lost() -> None:
            if not written.done():
                written.set_exception(
                    UnavailableError("the change was dropped with the cached state before it was written")
                )

        task = m.tasks.transfer[0]
        ctx.held_task = task
        ctx.deferred.append(Deferred(ack, lost))
        self._held.add(ctx)
        self._held_flushes.add(ctx)
        return written

    def _carry_held(self, ctx: RunContext, m: Mutation) -> None:
        """A write carries the run's held change; its workflow task needs a durable transfer task
        only if it is not started yet (a started one is guarded by its timeout timer, which the
        write carries, and a completed one needs nothing)."""
        task, ctx.held_task = ctx.held_task, None
        if task is None:
            return
        self._held.discard(ctx)
        wt = m.ms.workflow_task
        if (
            m.ms.is_running
            and wt.scheduled_event_id == task.args["s"]
            and wt.attempt == task.args["a"]
            and not wt.started_event_id
        ):
            m.tasks.transfer.append(task)

    def end_long_polls(self) -> None:
        """The server is stopping: every long poll waiting for a run's new events or its close is
        woken, and ``stopping`` tells it to answer with what it has (a client polls again, on
        another server or after the restart) instead of waiting again."""
        self.stopping = True
        for shard in self.shards.values():
            for ctx in shard.cached_runs():
                if ctx.watched:
                    ctx.notify(closed=True)

    async def stop(self) -> None:
        """Writes what runs hold only in memory and stops the flush timers: the held changes, so
        their callers are answered, and the speculative starts, so that a worker's answer to a
        task it holds is accepted by the next owner of the shard instead of refused as stale (the
        task would run again)."""
        self.stopping = True
        self._held_flushes.cancel()
        runs = {id(c): c for c in self._held if c.held_task is not None}
        runs.update((id(c), c) for c in self._start_flushes.pending())
        self._start_flushes.cancel()
        slots = asyncio.Semaphore(STOP_FLUSH_CONCURRENCY)

        async def flush(ctx: RunContext) -> None:
            async with slots:
                await self._flush(ctx)

        # With the flushes their timers started: they write the same kind of change, and done
        # before the queues save their ack levels, their tasks are counted there.
        await asyncio.gather(*(flush(c) for c in runs.values()), *list(self._flushes), return_exceptions=True)

    async def release_shards(self) -> None:
        """Hands every shard over to its next owner (``ShardContext.release``); a shard whose
        release fails is left as after a crash: the next owner's acquire fences it all the same."""
        for shard in self.shards.values():
            try:
                await shard.release()
            except Exception as e:
                log.warning("shard %d: releasing it failed (%s); the next owner fences it", shard.shard_id, e)

    def _start_flush(self, ctx: RunContext) -> None:
        task = asyncio.create_task(self._flush(ctx))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def write_unwritten(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        """Writes what the run holds only in memory (a speculative start, a held completion)."""
        await self.mutate(namespace_id, workflow_id, run_id, _write_as_is)

    async def _flush(self, ctx: RunContext) -> None:
        ns, wid, rid = ctx.key
        try:
            await self.mutate(ns, wid, rid, _write_as_is)
        except Exception as e:  # the next write of the run carries it anyway
            log.info("writing the speculative start of %s failed: %s", wid, e)

    # -- start -------------------------------------------------------------------------------------

    async def start_workflow(
        self,
        namespace_id: str,
        req: StartWorkflowRequest,
        *,
        parent: ParentRef | None = None,
        claim: Callable[[MatchTask], None] | None = None,
    ) -> tuple[str, bool]:
        """Returns (run id, started). Idempotent by ``request_id``.

        Optimistic, as the anchors do: a workflow id this shard has not seen is created as brand
        new straight away, and an existing current run is learnt from the conflict, so the usual
        start of a new id costs one write and no read."""
        limits.validate_start(req)
        shard = self.shard(namespace_id, req.workflow_id)
        await self.writable(namespace_id)
        cur: CurrentExecution | None = None
        if (namespace_id, req.workflow_id) in shard.current_runs:
            cur = await self._read_current(shard, namespace_id, req.workflow_id)
        for _ in range(5):
            version = self.write_version(namespace_id, cur.last_write_version if cur is not None else 0)
            mode = CreateMode.BRAND_NEW
            prev_run_id, prev_version = "", 0
            if cur is not None:
                if req.request_id and cur.create_request_id == req.request_id:
                    return cur.run_id, False
                running = cur.state in (ExecutionState.CREATED, ExecutionState.RUNNING)
                if running:
                    if req.signal_name:
                        try:
                            await self._signal_with_start(namespace_id, cur.run_id, req)
                        except WorkflowCompletedError:
                            # It closed meanwhile: the signal starts a new run instead.
                            shard.current_runs.pop((namespace_id, req.workflow_id), None)
                            cur = await self._read_current(shard, namespace_id, req.workflow_id)
                            continue
                        return cur.run_id, False
                    conflict = _conflict_policy(req)
                    if conflict == "USE_EXISTING":
                        return cur.run_id, False
                    if conflict == "TERMINATE_EXISTING":
                        new_run_id = await self._terminate_and_start(namespace_id, cur.run_id, req, parent)
                        if new_run_id is not None:
                            return new_run_id, True
                        # The run closed meanwhile: decide again against what is current now.
                        shard.current_runs.pop((namespace_id, req.workflow_id), None)
                        cur = await self._read_current(shard, namespace_id, req.workflow_id)
                        continue
                    raise WorkflowAlreadyStartedError(
                        f"workflow {req.workflow_id!r} is already running as run {cur.run_id}",
                        workflow_id=req.workflow_id,
                        run_id=cur.run_id,
                        start_request_id=cur.create_request_id,
                    )
                policy = req.workflow_id_reuse_policy
                if policy == "REJECT_DUPLICATE" or (
                    policy == "ALLOW_DUPLICATE_FAILED_ONLY" and cur.status == ExecutionStatus.COMPLETED
                ):
                    raise WorkflowAlreadyStartedError(
                        f"workflow {req.workflow_id!r} ran before (run {cur.run_id}, status "
                        f"{ExecutionStatus(cur.status).name}) and the reuse policy is {policy}",
                        workflow_id=req.workflow_id,
                        run_id=cur.run_id,
                    )
                mode, prev_run_id, prev_version = (
                    CreateMode.WORKFLOW_ID_REUSE,
                    cur.run_id,
                    cur.last_write_version,
                )
            run_id = new_id()
            ms = self._new_run_state(namespace_id, run_id, req)
            ms.current_version = version
            m = Mutation(ms, MutationTasks(), self.clock.now_us())
            self._record_started(m, req, parent)
            if claim is not None:
                # Eager start: the first workflow task goes to ``claim`` once the write commits,
                # not to matching; its transfer task is written as usual (a crash offers it).
                for t in m.tasks.transfer:
                    if t.kind == TransferKind.WORKFLOW_TASK:
                        t.claim = claim
            ctx = shard.run_context((namespace_id, req.workflow_id, run_id))
            try:
                async with ctx.lock:
                    await shard.create_run(
                        ctx,
                        ms,
                        m.tasks,
                        mode=mode,
                        previous_run_id=prev_run_id,
                        previous_last_write_version=prev_version,
                    )
            except CurrentWorkflowConditionFailedError as e:
                # The id has a current run (or another start won a race): decide against it.
                shard.current_runs.pop((namespace_id, req.workflow_id), None)
                cur = CurrentExecution(
                    e.run_id,
                    e.request_id,
                    ExecutionState(e.state),
                    ExecutionStatus(e.status),
                    e.last_write_version,
                )
                continue
            except ConditionFailedError:
                # A reuse found no current run any more (deleted meanwhile): look again.
                cur = await self._read_current(shard, namespace_id, req.workflow_id)
                continue
            except ShardOwnershipLostError as e:
                raise UnavailableError(str(e)) from e
            return run_id, True
        raise UnavailableError(f"workflow {req.workflow_id!r}: too many concurrent starts, try again")

    async def _signal_with_start(self, namespace_id: str, run_id: str, req: StartWorkflowRequest) -> None:
        """Signal-with-start found the run running: the signal goes to it (batched with other
        signals of the run, as any signal), and, as Temporal does, a first workflow task still
        waiting for its start delay is dispatched now (a plain signal leaves the delay alone)."""
        await self.signal(
            namespace_id,
            req.workflow_id,
            run_id,
            req.signal_name,
            req.signal_input,
            identity=req.identity,
            request_id=req.request_id,
        )
        await self.mutate(namespace_id, req.workflow_id, run_id, _end_start_delay)

    async def _terminate_and_start(
        self, namespace_id: str, run_id: str, req: StartWorkflowRequest, parent: ParentRef | None
    ) -> str | None:
        """TERMINATE_EXISTING: terminates run ``run_id`` and starts the new run in the same write
        (as a reset does), so there is no moment with two runs running, nor one with none that
        another start could take. None if the run had closed meanwhile."""
        new_run_id = new_id()

        def rule(m: Mutation) -> None:
            require_running(m.ms)
            new_state = self._new_run_state(namespace_id, new_run_id, req)
            new_state.current_version = m.ms.current_version
            start = Mutation(new_state, MutationTasks(), m.now)
            self._record_started(start, req, parent)
            close_run(
                m,
                EventType.WORKFLOW_EXECUTION_TERMINATED,
                {
                    "reason": f"terminated by a start of run {new_run_id} ({_conflict_policy(req)})",
                    "details": None,
                    "identity": req.identity,
                },
            )
            m.next_run = (new_state, start.tasks)

        try:
            await self.mutate(namespace_id, req.workflow_id, run_id, rule)
        except WorkflowCompletedError:
            return None
        return new_run_id

    async def _read_current(
        self, shard: ShardContext, namespace_id: str, workflow_id: str
    ) -> CurrentExecution | None:
        try:
            return await self.stores.executions.get_current_execution(
                shard.shard_id, namespace_id, workflow_id
            )
        except EntityNotFoundError:
            return None

    def _new_run_state(self, namespace_id: str, run_id: str, req: StartWorkflowRequest) -> MutableState:
        info = ExecutionInfo(namespace_id=namespace_id, workflow_id=req.workflow_id, run_id=run_id)
        info.tree_id = run_id
        info.branch_id = new_id()
        return MutableState(info)

    def _record_started(
        self, m: Mutation, req: StartWorkflowRequest, parent: ParentRef | None = None
    ) -> None:
        run_timeout = req.workflow_run_timeout_ms or req.workflow_execution_timeout_ms
        if req.workflow_execution_timeout_ms:
            run_timeout = min(run_timeout, req.workflow_execution_timeout_ms)
        ms = m.ms
        # The first workflow task waits for the cron schedule's next fire, or for the start delay
        # (never both: ``limits.validate_start``); a durable WORKFLOW_BACKOFF timer schedules it.
        backoff_ms = req.workflow_start_delay_ms
        if req.cron_schedule:
            backoff_ms = cron_backoff_ms(req.cron_schedule, m.now)
        ms.add_event(
            EventType.WORKFLOW_EXECUTION_STARTED,
            m.now,
            {
                "workflow_type": req.workflow_type,
                "task_queue": req.task_queue,
                "input": req.input,
                "workflow_execution_timeout_ms": req.workflow_execution_timeout_ms,
                "workflow_run_timeout_ms": run_timeout,
                "workflow_task_timeout_ms": req.workflow_task_timeout_ms
                or limits.DEFAULT_WORKFLOW_TASK_TIMEOUT_MS,
                "original_execution_run_id": ms.info.run_id,
                "first_execution_run_id": ms.info.run_id,
                "identity": req.identity,
                "retry_policy": req.retry_policy,
                "attempt": 1,
                "cron_schedule": req.cron_schedule or None,
                "memo": req.memo or {},
                "search_attributes": req.search_attributes or {},
                "header": req.header or {},
                "request_id": req.request_id,
                "first_workflow_task_backoff_ms": backoff_ms,
                "parent_workflow_namespace": parent.namespace if parent else None,
                "parent_workflow_execution": (
                    {"workflow_id": parent.workflow_id, "run_id": parent.run_id} if parent else None
                ),
                "parent_initiated_event_id": parent.initiated_event_id if parent else 0,
                "workflow_execution_expiration_time": (
                    m.now + req.workflow_execution_timeout_ms * 1000
                    if req.workflow_execution_timeout_ms
                    else 0
                ),
            },
        )
        if req.signal_name:
            ms.add_event(
                EventType.WORKFLOW_EXECUTION_SIGNALED,
                m.now,
                # Signal-with-start has one header, for the start and the signal (as the anchors).
                {
                    "signal_name": req.signal_name,
                    "input": req.signal_input,
                    "identity": req.identity,
                    "header": req.header or {},
                },
            )
            if req.request_id:
                ms.signal_request_ids.add(req.request_id)
        if backoff_ms:
            m.timer(TimerKind.WORKFLOW_BACKOFF, m.now + backoff_ms * 1000)
        else:
            m.schedule_workflow_task()
        if run_timeout:
            m.timer(TimerKind.WORKFLOW_RUN_TIMEOUT, m.now + (backoff_ms + run_timeout) * 1000)
        m.visibility(VisibilityKind.START)

    # -- signal, cancel, terminate ---------------------------------------------------------------

    async def signal(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        signal_name: str,
        input: list[dict[str, Any]] | None,
        *,
        identity: str = "",
        request_id: str = "",
        header: dict[str, Any] | None = None,
    ) -> None:
        limits.validate_payloads("input", input)
        if not signal_name:
            raise InvalidArgumentError("signal_name is required")
        await self.on_current_run(
            namespace_id,
            workflow_id,
            run_id,
            lambda rid: self._signal_run(
                namespace_id, workflow_id, rid, signal_name, input, identity, request_id, header or {}
            ),
        )

    async def on_current_run(
        self, namespace_id: str, workflow_id: str, run_id: str, op: Callable[[str], Awaitable[T]]
    ) -> T:
        """Runs ``op`` on run ``run_id``, or, when none is given, on the workflow's current run,
        following it if that run closes into a next one meanwhile (continue-as-new, cron, retry):
        a request addressed to the workflow belongs to whichever run carries it on."""
        if run_id:
            return await op(run_id)
        shard = self.shard(namespace_id, workflow_id)
        # Follow the chain for as long as it moves (a run that continues as new as soon as it is
        # signalled closes under every signal's feet); give up only if it never settles.
        deadline = asyncio.get_running_loop().time() + FOLLOW_RUNS_FOR_S
        while asyncio.get_running_loop().time() < deadline:
            try:
                current = await shard.current_run_id(namespace_id, workflow_id)
            except EntityNotFoundError:
                raise WorkflowNotFoundError(
                    f"workflow not found: workflow_id={workflow_id!r}", workflow_id=workflow_id
                ) from None
            try:
                return await op(current)
            except WorkflowCompletedError:
                shard.current_runs.pop((namespace_id, workflow_id), None)
                if await shard.current_run_id(namespace_id, workflow_id) == current:
                    raise
        raise UnavailableError(f"workflow {workflow_id!r}: its current run keeps changing, try again")

    async def _signal_run(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        signal_name: str,
        input: list[dict[str, Any]] | None,
        identity: str,
        request_id: str,
        header: dict[str, Any],
    ) -> None:
        item = PendingSignal(
            signal_name, input, identity, request_id, asyncio.get_running_loop().create_future(), header
        )
        key = (namespace_id, workflow_id, run_id)
        queue = self._signal_queues.get(key)
        if queue is not None:
            # A signal of this run is being written: ride along with the next write.
            queue.append(item)
            return await item.done
        queue = self._signal_queues[key] = [item]
        try:
            while queue:
                batch = queue[:]
                del queue[:]
                await self._write_signals(namespace_id, workflow_id, run_id, batch)
        finally:
            del self._signal_queues[key]
        return await item.done

    async def _write_signals(
        self, namespace_id: str, workflow_id: str, run_id: str, batch: list[PendingSignal]
    ) -> None:
        """Applies a batch of signals to one run in one write (group commit at the run level: many
        clients signalling one workflow pay one write per batch, not one each). Each signal is
        checked on its own, so one refused signal does not refuse the others."""
        outcomes: dict[int, ServiceError] = {}

        def rule(m: Mutation) -> None:
            signals.apply_batch(m, batch, outcomes)

        try:
            await self.mutate(namespace_id, workflow_id, run_id, rule)
        except BaseException as e:
            for s in batch:
                if not s.done.done():
                    s.done.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        for n, s in enumerate(batch):
            if n in outcomes:
                s.done.set_exception(outcomes[n])
            else:
                s.done.set_result(None)

    async def request_cancel(
        self, namespace_id: str, workflow_id: str, run_id: str, *, identity: str = "", request_id: str = ""
    ) -> None:
        await self.on_current_run(
            namespace_id,
            workflow_id,
            run_id,
            lambda rid: self._request_cancel_run(namespace_id, workflow_id, rid, identity, request_id),
        )

    async def _request_cancel_run(
        self, namespace_id: str, workflow_id: str, run_id: str, identity: str, request_id: str
    ) -> None:
        def rule(m: Mutation) -> None:
            ms = m.ms
            require_running(ms)
            if ms.info.cancel_requested:
                m.noop = True  # the anchors accept a repeated cancel request silently
                return
            ms.info.cancel_requested = True
            ms.info.cancel_request_id = request_id
            ms.add_or_buffer(
                EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED, m.now, {"cause": "", "identity": identity}
            )
            m.schedule_workflow_task()

        await self.mutate(namespace_id, workflow_id, run_id, rule)

    async def terminate(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        *,
        reason: str = "",
        details: list[dict[str, Any]] | None = None,
        identity: str = "",
    ) -> None:
        def rule(m: Mutation) -> None:
            require_running(m.ms)
            close_run(
                m,
                EventType.WORKFLOW_EXECUTION_TERMINATED,
                {"reason": reason, "details": details, "identity": identity},
            )

        await self.on_current_run(
            namespace_id, workflow_id, run_id, lambda rid: self.mutate(namespace_id, workflow_id, rid, rule)
        )

    async def reset(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        *,
        reset_type: str,
        event_id: int = 0,
        reason: str = "",
        identity: str = "",
    ) -> str:
        """Starts the workflow over from a past workflow task of run ``run_id`` (the current run if
        empty); returns the new run's id. See ``reset``."""
        if not reason:
            raise InvalidArgumentError("reason is required for a reset")
        _, base, events = await self.get_state_and_events(namespace_id, workflow_id, run_id)
        version = self.write_version(namespace_id, base.info.last_write_version)
        started_id = resetting.reset_point(events, reset_type, event_id)
        new_state, tasks, _ = resetting.build_reset_run(
            list(events),
            started_id,
            namespace_id=namespace_id,
            workflow_id=workflow_id,
            base_run_id=base.info.run_id,
            now=self.clock.now_us(),
            reason=reason,
            identity=identity,
            version=version,
        )
        shard = self.shard(namespace_id, workflow_id)
        current = await shard.current_run_id(namespace_id, workflow_id)
        await self.mutate(
            namespace_id,
            workflow_id,
            current,
            lambda m: resetting.terminate_for_reset(m, (new_state, tasks), reason, identity),
        )
        return new_state.info.run_id

    # -- reads -------------------------------------------------------------------------------------

    async def get_state(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> tuple[RunContext, MutableState]:
        """The run's (cached) state, without loading its history."""
        shard, ctx = await self.run_context(namespace_id, workflow_id, run_id)
        async with ctx.lock:
            ms = await self.load(shard, ctx)
        return ctx, ms

    async def get_state_and_events(
        self, namespace_id: str, workflow_id: str, run_id: str
    ) -> tuple[RunContext, MutableState, list]:  # type: ignore[type-arg]
        shard, ctx = await self.run_context(namespace_id, workflow_id, run_id)
        async with ctx.lock:
            ms = await self.load(shard, ctx)
            events = await shard.load_events(ctx)
        return ctx, ms, events

    async def wait_for_change(self, ctx: RunContext, timeout_s: float, *, close_only: bool = False) -> None:
        """Waits until the run gets new events (``close_only``: until it closes) or ``timeout_s``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        (ctx.close_waiters if close_only else ctx.waiters).append(fut)
        expiry = loop.call_later(timeout_s, expire, fut)
        try:
            await fut
        finally:
            expiry.cancel()


def _conflict_policy(req: StartWorkflowRequest) -> str:
    """What a start does about a running run of its id. The reuse policy TERMINATE_IF_RUNNING
    predates the conflict policy and means TERMINATE_EXISTING (Temporal maps it so too)."""
    if req.workflow_id_reuse_policy == "TERMINATE_IF_RUNNING":
        return "TERMINATE_EXISTING"
    policy = req.workflow_id_conflict_policy
    return policy if policy and policy != "UNSPECIFIED" else "FAIL"


def _end_start_delay(m: Mutation) -> None:
    """The run's first workflow task is dispatched now if it still waits for its start delay."""
    ms = m.ms
    i = ms.info
    if (
        not ms.is_running
        or ms.has_pending_workflow_task
        or i.last_completed_workflow_task_event_id
        or i.execution_time <= m.now
    ):
        m.noop = True
        return
    i.execution_time = m.now  # its WorkflowTaskScheduled records when the delay ended
    m.schedule_workflow_task()


def _write_as_is(m: Mutation) -> None:
    """A rule that changes nothing: the write carries what the run holds in memory."""
