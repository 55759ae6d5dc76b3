"""One server process with every role in it: frontend, history shards, queue processors, matching.

``Host.start`` opens nothing itself: it takes the stores (SQLite, Cassandra, ...) and a clock, acquires
its shards, recovers their pending tasks and starts serving. ``Host.frontend`` is the
``WorkflowService`` that clients and workers call.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Any

from cadenza.engine.archival import ArchivalSettings
from cadenza.engine.clock import Clock, SystemClock
from cadenza.engine.errors import (
    AlreadyExistsError,
    NamespaceNotActiveError,
    ServiceError,
    UnavailableError,
    WorkflowNotFoundError,
)
from cadenza.engine.frontend import Frontend
from cadenza.engine.history import activities, chaining, cross_workflow
from cadenza.engine.history import workflow_tasks as wft
from cadenza.engine.history.engine import HistoryEngine, Mutation
from cadenza.engine.history.queues import QueueProcessors
from cadenza.engine.history.retention import Retention
from cadenza.engine.history.task_refresher import refresh_tasks
from cadenza.engine.history.tasks import Task, TimerKind
from cadenza.engine.history.workflow_tasks import TRANSIENT_SCHEDULED_ID
from cadenza.engine.matching import ACTIVITY_TASK, WORKFLOW_TASK, MatchingEngine, MatchTask
from cadenza.engine.namespaces import NamespaceRegistry
from cadenza.engine.outbox import (
    STATUS_NAMES,
    DiscardingSink,
    VisibilitySink,
    VisibilityUpdate,
)
from cadenza.engine.persistence.protocols import ExecutionState, Stores
from cadenza.metrics.persistence import metered_stores
from cadenza.metrics.server import ServerMetrics
from cadenza.replication.cluster import ClusterMetadata
from cadenza.schemas.events import EventType
from cadenza.schemas.service import NamespaceInfo

log = logging.getLogger("cadenza.host")

DEFAULT_NAMESPACE = "default"
VISIBILITY_ORDER_WAIT_S = 10.0
"""How long a retention delete waits for the outbox to publish what it holds (``_publish_deleted``)."""
READ_AFTER_WRITE_WAIT_S = 1.0
"""The longest a list or count waits for the visibility of earlier writes (``visibility_barrier``)."""


class Host:
    def __init__(
        self,
        stores: Stores,
        clock: Clock,
        *,
        num_shards: int,
        host_id: str,
        visibility_sink: VisibilitySink | None = None,
        cluster: ClusterMetadata | None = None,
        metrics: ServerMetrics | None = None,
        archival: ArchivalSettings | None = None,
    ) -> None:
        self.metrics = metrics = metrics or ServerMetrics.disabled()
        """The server's metrics (``cadenza.metrics``); disabled unless the caller made some."""
        stores = metered_stores(stores, metrics)
        self.stores = stores
        self.clock = clock
        self.visibility_sink: VisibilitySink = visibility_sink or DiscardingSink()
        # Tasks that no poller takes in time are written to the task queues' rows (bounded memory).
        self.matching = MatchingEngine(stores.task_queues, now_us=clock.now_us)
        self.queues = QueueProcessors(
            self.matching,
            timer_handler=self._on_timer,
            visibility_handler=self._on_visibility,
            transfer_handler=self._on_transfer,
            now_us=clock.now_us,
            sleep_until=clock.sleep_until,
            metrics=metrics,
        )
        self.namespaces = NamespaceRegistry(stores.namespaces, cluster=cluster)
        self.history = HistoryEngine(
            stores,
            clock,
            num_shards=num_shards,
            host=host_id,
            on_new_tasks=self.queues.on_new_tasks,
            on_volatile_timer=self.queues.push_volatile_timer,
            on_volatile_timers_done=self.queues.drop_volatile_timers,
            hand_over=self.queues.hand_over,
            ledger=self.queues,
            namespaces=self.namespaces,
        )
        # A speculative workflow task (one that delivers updates) is offered from memory only.
        self.history.updates.offer = lambda t: self.queues.offer(WORKFLOW_TASK, t, lambda: None)
        self._indexer: Any = None
        self.replication: Any = None
        """The cluster's ``cadenza.replication.Replication`` when it replicates (None otherwise)."""
        self._refresher: asyncio.Task[None] | None = None
        self.dynamic_config: Any = None
        """``cadenza.ops.dynamic_config.DynamicConfig`` (None: every setting at its default)."""
        self._takeovers: set[asyncio.Task[int]] = set()
        self.frontend = Frontend(self.history, self.matching, self.namespaces)
        archival = archival or ArchivalSettings()
        self.namespaces.archival = archival
        self.frontend.archival = archival
        self.retention = Retention(self.history, archival=archival, publish_deleted=self._publish_deleted)
        """Archives and deletes closed runs whose namespace's retention is over."""
        self.matching.on_sticky_queued = self._arm_sticky_timeout
        if metrics.enabled:
            self._instrument(metrics)

    def _instrument(self, metrics: ServerMetrics) -> None:
        from cadenza.metrics.frontend import instrument_frontend

        def namespace_name(namespace_id: str) -> str | None:
            info = self.namespaces.cached_by_id(namespace_id)
            return None if info is None else info.name

        metrics.namespace_name = namespace_name
        metrics.known_namespace = lambda name: self.namespaces.cached_by_id_or_name(name) is not None
        self.history.metrics = metrics
        self.matching.metrics = metrics
        instrument_frontend(self.frontend, metrics)

    @classmethod
    async def start(
        cls,
        stores: Stores,
        *,
        clock: Clock | None = None,
        num_shards: int = 4,
        host_id: str | None = None,
        default_namespace: str | None = DEFAULT_NAMESPACE,
        visibility_sink: VisibilitySink | None = None,
        visibility_store: Any = None,
        bus: Any = None,
        cluster: ClusterMetadata | None = None,
        replication: Any = None,
        visibility_topic: str | None = None,
        namespace_refresh_s: float = 10.0,
        dynamic_config: Any = None,
        metrics: ServerMetrics | None = None,
        archival: ArchivalSettings | None = None,
    ) -> Host:
        """``visibility_store`` with ``bus`` runs the anchors' visibility path in this process: the
        outbox publishes to the bus, and an indexer consumes it into the store (which the frontend
        then lists and counts from). ``visibility_sink`` alone replaces the publisher (tests).

        ``cluster`` names this cluster among others; ``replication`` (a
        ``cadenza.replication.ReplicationConfig``) publishes this cluster's writes in global
        namespaces and applies the other clusters'. ``visibility_topic``: clusters that share one
        bus each need their own visibility topic (default ``cadenza-visibility``)."""
        indexer = None
        if visibility_store is not None and bus is not None and visibility_sink is None:
            from cadenza.visibility.pipeline import (
                INDEXER_GROUP,
                VISIBILITY_TOPIC,
                BusVisibilitySink,
                VisibilityIndexer,
                ensure_topics,
            )

            topic = visibility_topic or VISIBILITY_TOPIC
            await ensure_topics(bus, topic=topic)
            visibility_sink = BusVisibilitySink(bus, topic=topic)
            indexer = VisibilityIndexer(
                bus,
                visibility_store,
                topic=topic,
                dlq_topic=f"{topic}-dlq",
                group=INDEXER_GROUP if topic == VISIBILITY_TOPIC else f"{INDEXER_GROUP}-{topic}",
            )
        host = cls(
            stores,
            clock or SystemClock(),
            num_shards=num_shards,
            host_id=host_id or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}",
            visibility_sink=visibility_sink,
            cluster=cluster,
            metrics=metrics,
            archival=archival,
        )
        host.frontend.visibility = visibility_store
        if indexer is not None:
            # This process indexes what it writes: its lists and counts can see its own writes.
            host.frontend.visibility_barrier = host.visibility_barrier
        host.frontend.dynamic_config = dynamic_config
        host.dynamic_config = dynamic_config
        host._indexer = indexer
        await host.namespaces.load()
        host.namespaces.on_activated = host._on_namespace_activated
        if replication is not None:
            from cadenza.replication.service import Replication

            host.replication = Replication(host, replication)
            await host.replication.prepare()
        await host.history.start()
        # Before the shards offer their pending tasks: a backlog left in the store is older.
        await host.matching.start([ns.id for ns in await host.namespaces.list()])
        await host.queues.start(host.history.shards)
        if indexer is not None:
            indexer.start()
        if host.replication is not None:
            host.replication.start()
        if namespace_refresh_s > 0:
            host._refresher = asyncio.create_task(host._refresh_namespaces(namespace_refresh_s))
        if default_namespace:
            try:
                await host.namespaces.register(NamespaceInfo(name=default_namespace, id=""))
            except AlreadyExistsError:
                pass
        return host

    async def _on_namespace_activated(self, info: NamespaceInfo) -> None:
        task = asyncio.create_task(self.take_over(info), name=f"cadenza-take-over-{info.name}")
        self._takeovers.add(task)
        task.add_done_callback(self._takeovers.discard)

    async def take_over(self, info: NamespaceInfo) -> int:
        """The namespace became active here: every open run of it gets the tasks its state calls
        for (they were not made while this cluster was standby), so what came due fires now and
        what is pending is dispatched. Returns how many runs were refreshed."""
        refreshed = 0
        for shard in list(self.history.shards.values()):
            token: bytes | None = None
            while True:
                rows, token = await self.stores.executions.list_executions(shard.shard_id, 500, token)
                for r in rows:
                    if r.namespace_id != info.id or r.state not in (
                        ExecutionState.CREATED,
                        ExecutionState.RUNNING,
                    ):
                        continue
                    try:
                        await self.history.mutate(r.namespace_id, r.workflow_id, r.run_id, refresh_tasks)
                        refreshed += 1
                        if self.replication is not None:
                            # What a losing branch had and no active cluster re-applied yet (this
                            # one was standby when the conflict was resolved here).
                            await self.replication.applier.replicator.reapplier.reapply_losing_branches(
                                r.namespace_id, r.workflow_id, r.run_id
                            )
                    except ServiceError as e:
                        log.warning("taking over %s run %s failed: %s", r.workflow_id, r.run_id, e)
                if not token:
                    break
        log.info("namespace %s is active here: %d open runs took over", info.name, refreshed)
        return refreshed

    async def _refresh_namespaces(self, interval_s: float) -> None:
        """Picks up namespace changes made by other processes on the same store (failovers)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.namespaces.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("refreshing namespaces failed: %s", e)

    def end_long_polls(self) -> None:
        """The first step of a stop, once no new call is admitted: task polls and history waits in
        flight are answered empty at once, so their clients poll again elsewhere or after the
        restart rather than holding on to a server that is going."""
        self.matching.drain()
        self.history.end_long_polls()

    async def visibility_barrier(self, timeout_s: float = READ_AFTER_WRITE_WAIT_S) -> bool:
        """Read-after-write for visibility on this process's own indexer: waits until every
        update written so far is published and indexed, so a list or count right after a run
        closed sees it (as a development server's users expect). False if ``timeout_s`` passed
        first (a failing sink or store): the read then answers with what is indexed."""
        indexer = self._indexer
        if indexer is None:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if not await self.queues.visibility_published(timeout_s):
            return False
        return bool(await indexer.runner.caught_up(indexer.topic, max(0.0, deadline - loop.time())))

    async def stop(self, *, publish_for_s: float = 0.0) -> None:
        """Stops the engine in order (``docs/architecture.md``, "Graceful stop"): long polls end;
        runs write what they hold only in memory; matching saves its backlogs' ack levels; the
        queue processors stop, the outboxes publishing what they hold for up to ``publish_for_s``;
        the queues save their ack levels; the shards are released to their next owner. The stores
        are the caller's to close."""
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        for task in list(self._takeovers):
            task.cancel()
        await asyncio.gather(*self._takeovers, return_exceptions=True)
        self.end_long_polls()
        await self.history.stop()
        await self.matching.stop()
        await self.queues.stop(publish_for_s=publish_for_s)
        # After the outbox: its replication tasks go out through this publisher.
        if self.replication is not None:
            await self.replication.stop()
        try:
            await self.queues.flush_ack_levels()
        except Exception:
            log.warning("could not save queue ack levels at shutdown; tasks will be re-processed")
        await self.history.release_shards()
        if self._indexer is not None:
            await self._indexer.stop()
        close = getattr(self.visibility_sink, "close", None)
        if close is not None:
            await close()

    # -- the visibility outbox ----------------------------------------------------------------------

    async def _publish_deleted(self, namespace_id: str, workflow_id: str, run_id: str, version: int) -> None:
        """Retention deleted the run: its record goes too, through the same path as its updates
        (``version`` is a fresh task id, so it outranks the close record on every store)."""
        if type(self.visibility_sink) is DiscardingSink:
            return
        # The run's own updates (its close record) may still wait in the outbox, which sends on
        # its own schedule: published after this delete, that older record would bring the run
        # back to every list for good. So the delete goes once what the outbox holds is out; if
        # it cannot go out (the sink is down), the retention timer is retried later.
        if not await self.queues.visibility_published(VISIBILITY_ORDER_WAIT_S):
            raise UnavailableError(
                "the visibility outbox is behind; the deleted run's record is removed on a retry"
            )
        gone = VisibilityUpdate(
            namespace_id, workflow_id, run_id, version, "", "", "", 0, 0, 0, 0, deleted=True
        )
        await self.visibility_sink.publish([gone])

    async def _on_visibility(self, tasks: list[Task]) -> None:
        if type(self.visibility_sink) is DiscardingSink:
            return  # no visibility configured: building records from the runs' state is wasted work
        # Every task's record is built from the run's newest state, so of a run's tasks in one
        # batch (its start and its close, when the run was short) only the newest needs sending:
        # the consumer keeps the record with the highest task id, and the others would carry the
        # same state under lower ids. All of them are acknowledged once this returns.
        newest: dict[tuple[str, str, str], Task] = {}
        for t in tasks:
            key = (t.namespace_id, t.workflow_id, t.run_id)
            seen = newest.get(key)
            if seen is None or seen.task_id < t.task_id:
                newest[key] = t
        updates: list[VisibilityUpdate] = []
        for t in newest.values():
            try:
                if t.state is not None:
                    ms = t.state  # the run closed in the write that made this task: its final state
                else:
                    _, ms = await self.history.get_state(t.namespace_id, t.workflow_id, t.run_id)
            except WorkflowNotFoundError:
                updates.append(
                    VisibilityUpdate(
                        t.namespace_id,
                        t.workflow_id,
                        t.run_id,
                        t.task_id,
                        "",
                        "",
                        "",
                        0,
                        0,
                        0,
                        0,
                        deleted=True,
                    )
                )
                continue
            i = ms.info
            updates.append(
                VisibilityUpdate(
                    namespace_id=i.namespace_id,
                    workflow_id=i.workflow_id,
                    run_id=i.run_id,
                    task_id=t.task_id,
                    workflow_type=i.workflow_type,
                    task_queue=i.task_queue,
                    status=STATUS_NAMES[int(i.status)],
                    start_time=i.start_time,
                    execution_time=i.execution_time,
                    close_time=i.close_time,
                    history_length=ms.next_event_id - 1,
                    search_attributes=dict(i.search_attributes),
                    memo=dict(i.memo),
                )
            )
        await self.visibility_sink.publish(updates)

    async def _on_transfer(self, task: Task) -> None:
        try:
            await cross_workflow.process(self.history, task)
        except NamespaceNotActiveError as e:
            # The namespace failed over: the active cluster owns the run's next steps now.
            log.info("dropping transfer task of %s: %s", task.workflow_id, e)

    # -- timers ----------------------------------------------------------------------------------------

    async def _on_timer(self, task: Task) -> None:
        try:
            await self._fire_timer(task)
        except NamespaceNotActiveError as e:
            log.info("dropping timer of %s: %s", task.workflow_id, e)

    async def _fire_timer(self, task: Task) -> None:
        kind = TimerKind(task.kind)
        a = task.args
        ns, wid, rid = task.namespace_id, task.workflow_id, task.run_id
        mutate = self.history.mutate
        if kind == TimerKind.WORKFLOW_TASK_TIMEOUT:
            await mutate(ns, wid, rid, lambda m: wft.timed_out(m, a["s"], a["a"], a.get("r", "")))
        elif kind == TimerKind.ACTIVITY_TIMEOUT:
            await mutate(ns, wid, rid, lambda m: activities.timeout_fired(m, a["s"], a["a"], a["t"]))
        elif kind == TimerKind.USER_TIMER:
            await mutate(ns, wid, rid, lambda m: _fire_user_timer(m, a["id"], a["e"]))
        elif kind == TimerKind.WORKFLOW_RUN_TIMEOUT:
            await mutate(ns, wid, rid, _run_timed_out)
        elif kind == TimerKind.ACTIVITY_RETRY:
            await self._redispatch(task, ACTIVITY_TASK)
        elif kind == TimerKind.WORKFLOW_TASK_RETRY:
            await self._redispatch(task, WORKFLOW_TASK)
        elif kind == TimerKind.WORKFLOW_BACKOFF:
            await mutate(ns, wid, rid, _backoff_over)
        elif kind == TimerKind.STICKY_SCHEDULE_TO_START:
            await self._sticky_timed_out(a["_match"])
        elif kind == TimerKind.DELETE_HISTORY_EVENT:
            await self.retention.fire(task)

    # -- sticky execution --------------------------------------------------------------------------

    def _arm_sticky_timeout(self, task: MatchTask) -> None:
        """A workflow task was queued on a sticky queue: unless started within its sticky
        schedule-to-start timeout, it goes to the normal queue (a timer of the engine's clock, only
        in memory: a task read back after a restart is queued, and so armed, again)."""
        try:
            shard = self.history.shard(task.namespace_id, task.workflow_id)
        except UnavailableError:
            return
        at = self.clock.now_us() + task.sticky_timeout_ms * 1000
        timer = Task(
            int(TimerKind.STICKY_SCHEDULE_TO_START),
            task.namespace_id,
            task.workflow_id,
            task.run_id,
            {"_match": task},
            visibility_time=at,
        )
        self.queues.push_volatile_timer(shard.shard_id, timer)

    async def _sticky_timed_out(self, task: MatchTask) -> None:
        # Once fallen back the task is an ordinary one: a second firing must leave it alone.
        if not task.normal_queue or not self.matching.withdraw(task):
            return  # a poller took it, or it is on its normal queue already
        queue = task.task_queue
        try:
            await self.history.mutate(
                task.namespace_id, task.workflow_id, task.run_id, lambda m: wft.reset_stickiness(m, queue)
            )
        except Exception as e:
            # The store may be down: the run stays sticky and its next task tries the sticky queue
            # again; what matters now is that this task reaches its normal queue (below). Raising
            # would have the timer fire again for a task that is no longer sticky.
            log.info("clearing the sticky queue of %s failed: %s", task.workflow_id, e)
        finally:
            self.matching.fall_back(task)

    async def _redispatch(self, task: Task, task_type: int) -> None:
        """A retry's backoff is over: offer the attempt to matching if it is still the pending one."""
        _, ms = await self.history.get_state(task.namespace_id, task.workflow_id, task.run_id)
        a = task.args
        if not ms.is_running:
            return
        if task_type == ACTIVITY_TASK:
            info = ms.activities.get(a["s"])
            if info is None or info.attempt != a["a"] or info.started_time:
                return
            queue = info.task_queue
        else:
            w = ms.workflow_task
            if not (w.transient and w.attempt == a["a"] and w.scheduled_event_id == TRANSIENT_SCHEDULED_ID):
                return
            queue = ms.info.task_queue
        shard = self.history.shard(task.namespace_id, task.workflow_id)
        offered = Task(task.kind, task.namespace_id, task.workflow_id, task.run_id, {**a, "q": queue})
        self.queues.offer(task_type, offered, self.queues.timer_ack(shard.shard_id, task))


def _fire_user_timer(m: Mutation, timer_id: str, started_event_id: int) -> None:
    ms = m.ms
    timer = ms.timers.get(timer_id)
    if (
        not ms.is_running
        or timer is None
        or timer.started_event_id != started_event_id
        or timer.fired_buffered
    ):
        m.noop = True
        return
    attrs = {"timer_id": timer_id, "started_event_id": started_event_id}
    if ms.has_started_workflow_task:
        timer.fired_buffered = True
        ms.buffer_event(EventType.TIMER_FIRED, m.now, attrs)
    else:
        ms.add_event(EventType.TIMER_FIRED, m.now, attrs)
        m.schedule_workflow_task()


def _run_timed_out(m: Mutation) -> None:
    if not m.ms.is_running:
        m.noop = True
        return
    failure = {
        "message": "workflow run timed out",
        "source": "Server",
        "stack_trace": "",
        "failure_type": "TimeoutFailure",
        "application_type": None,
        "non_retryable": False,
        "details": None,
        "timeout_type": "START_TO_CLOSE",
        "cause": None,
    }
    chaining.fail_or_retry(m, failure, 0, timed_out=True)


def _backoff_over(m: Mutation) -> None:
    """A run's first workflow task waited for its backoff (cron, retry, continue-as-new): now."""
    ms = m.ms
    if not ms.is_running or ms.has_pending_workflow_task or ms.info.last_completed_workflow_task_event_id:
        m.noop = True
        return
    ms.info.execution_time = min(ms.info.execution_time, m.now)
    m.schedule_workflow_task()
