"""Workers: poll a task queue, run workflow code and activities, report back.

A worker keeps recently used workflow runs in a cache, so a workflow task for a cached run applies
only the new events instead of replaying the whole history. A run leaves the cache when it closes,
when a task of it fails (its instance may have run code whose commands were thrown away), or when the
cache is full. The server knows which runs a worker has cached (sticky execution, ``_sticky.py``):
their tasks come on the worker's own sticky queue with only the new events.

Local activities run while their workflow task is open (see ``_runtime/local_activity_runner.py``);
sessions add two queues to poll (see ``_runtime/session_worker.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cadenza.schemas.events import (
    CLOSE_EVENT_TYPES,
    COMMAND_EVENT,
    Command,
    CommandType,
    EventType,
    HistoryEvent,
)
from cadenza.schemas.service import (
    GetHistoryRequest,
    PollActivityTaskResponse,
    PollWorkflowTaskResponse,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest,
)
from cadenza.sdk import activity as activity_mod
from cadenza.sdk._overload import PollBackoff
from cadenza.sdk._runtime.activity_tasks import (
    Heartbeater,
    activity_info_from_task,
    is_cancel,
    run_intercepted,
)
from cadenza.sdk._runtime.commands import COMMAND_EVENT_TYPES
from cadenza.sdk._runtime.definitions import DYNAMIC_WORKFLOW, WorkflowDefinition
from cadenza.sdk._runtime.instance import StaleInstanceError, WorkflowInstance
from cadenza.sdk._runtime.local_activity_runner import LocalActivityRunner
from cadenza.sdk._runtime.replayer import Replayer
from cadenza.sdk._runtime.session_worker import SessionHost
from cadenza.sdk._runtime.sessions import SESSION_CREATION_ACTIVITY
from cadenza.sdk._sticky import StickyCacheMiss, WorkflowCache
from cadenza.sdk.activity import DYNAMIC_ACTIVITY, ActivityContext, ActivityDefinition, dynamic_arguments
from cadenza.sdk.client import Client
from cadenza.sdk.converter import DataConverter, default_converter
from cadenza.sdk.exceptions import (
    ApplicationError,
    ApplicationErrorCategory,
    CadenzaError,
    NondeterminismError,
    QueryFailedError,
    RPCError,
    WorkflowTaskError,
)
from cadenza.sdk.interceptor import AnyInterceptor, WorkerInterceptor, activity_chain, workflow_classes

__all__ = ["Replayer", "Worker"]

_WORKFLOW_TASK_FAILURE = {"__temporal_error_identifier": "WorkflowTaskFailure"}
"""On the log record of a failed workflow task, as temporalio marks it: a logging filter can raise
its level (temporalio's samples do) without parsing the message."""

log = logging.getLogger("cadenza.worker")


def _log_poll_failure(kind: str, e: Exception) -> None:
    """A poll that failed is retried. A server that cannot be reached (restarting, failed over,
    killed) is expected in operation and gets one line; anything else keeps its traceback."""
    if isinstance(e, RPCError) and (e.status == "UNAVAILABLE" or e.retry_after is not None):
        # Unreachable, or over its limits (the poll waits for the server's hint): one line.
        log.warning("polling %s tasks failed, retrying: %s", kind, e)
    else:
        log.exception("polling %s tasks failed; retrying", kind)


_CLOSE_COMMAND_EVENTS = {ct for ct, et in COMMAND_EVENT.items() if et in CLOSE_EVENT_TYPES}


def _end_of_task_commands(events: Sequence[HistoryEvent], started_id: int, *, complete: bool) -> int | None:
    """Length of the prefix of ``events`` (from event 1) that ends with the command events of the
    workflow task started at ``started_id``; None while ``events`` (``complete``: the whole history
    so far) may not hold all of them yet.

    A task's command events directly follow its WorkflowTaskCompleted (events that arrive while a
    task runs are written after them), so the first other event, or the run's close, ends them."""
    if len(events) <= started_id:
        return None
    started, completed = events[started_id - 1], events[started_id]
    if (
        started.event_id != started_id
        or started.event_type is not EventType.WORKFLOW_TASK_STARTED
        or completed.event_type is not EventType.WORKFLOW_TASK_COMPLETED
    ):
        raise ApplicationError(
            f"event {started_id} is not the start of a completed workflow task; the history changed"
        )
    end = started_id + 1
    while end < len(events):
        event_type = events[end].event_type
        if event_type not in COMMAND_EVENT_TYPES:
            return end
        end += 1
        if event_type in CLOSE_EVENT_TYPES:
            return end
    return end if complete else None


@dataclass(frozen=True, slots=True)
class _RunningActivity:
    """An attempt whose function runs: what shutdown needs to cancel it."""

    task: asyncio.Task[Any]
    ctx: ActivityContext
    is_async: bool


def _worker_shutdown_error() -> ApplicationError:
    return ApplicationError(
        "the worker shut down while the activity ran; the attempt was cancelled", type="WorkerShutdown"
    )


class Worker:
    """Runs ``workflows`` and ``activities`` for one task queue until shut down.

    Use as ``async with Worker(...):`` or ``await worker.run()``."""

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        max_concurrent_activities: int = 200,
        max_concurrent_workflow_tasks: int | None = None,
        workflow_pollers: int = 4,
        activity_pollers: int = 4,
        max_cached_workflows: int = 10_000,
        sticky_queue_schedule_to_start_timeout: timedelta = timedelta(seconds=5),
        activity_executor: concurrent.futures.Executor | None = None,
        identity: str | None = None,
        max_concurrent_sessions: int = 0,
        graceful_shutdown_timeout: timedelta = timedelta(0),
        workflow_runner: Any = None,
        debug_mode: bool = False,
        workflow_failure_exception_types: Sequence[type[BaseException]] = (),
        interceptors: Sequence[WorkerInterceptor] = (),
    ) -> None:
        """``max_concurrent_sessions`` > 0 lets the worker accept that many worker sessions at a time
        (``workflow.create_session``); it then also runs the activities of its sessions.
        ``max_concurrent_workflow_tasks`` (default: ``workflow_pollers``) bounds the workflow tasks
        being handled at once; by default each poller handles the task it got, and the pollers of
        the worker's sticky queue (half as many as ``workflow_pollers``, at least one) add theirs.
        ``graceful_shutdown_timeout`` is how long running activities may
        go on when the worker shuts down before they are cancelled (as temporalio's option).
        ``max_cached_workflows`` 0 turns the cache and sticky execution off (every workflow task
        then carries the whole history); ``sticky_queue_schedule_to_start_timeout`` is how long a
        task waits on this worker's sticky queue before the server sends it to the normal queue.
        ``workflow_runner`` (``SandboxedWorkflowRunner()``, ``UnsandboxedWorkflowRunner()``) and
        ``debug_mode`` are accepted for temporalio's code and ignored: there is no sandbox, and
        no deadlock detector to turn off. ``workflow_failure_exception_types``: exceptions that,
        escaping any workflow's code, fail the run instead of the workflow task (as
        ``@workflow.defn(failure_exception_types=...)`` does for one workflow). ``interceptors``
        wrap activities and workflow runs, after those of the client (``cadenza.sdk.interceptor``)."""
        del workflow_runner, debug_mode
        if not workflows and not activities:
            raise ValueError("a worker needs at least one workflow or activity")
        if graceful_shutdown_timeout < timedelta(0):
            raise ValueError(f"graceful_shutdown_timeout must not be negative: {graceful_shutdown_timeout}")
        if max_concurrent_sessions and not activities:
            raise ValueError("a worker accepting sessions needs the activities to run in them")
        self.client = client
        self.task_queue = task_queue
        self.identity = identity or f"{client.identity}:{task_queue}:{uuid.uuid4().hex[:6]}"
        self._workflows: dict[str, WorkflowDefinition] = {}
        self._failure_exception_types = tuple(workflow_failure_exception_types)
        for cls in workflows:
            d = WorkflowDefinition.from_class(cls)
            if d.name in self._workflows:
                raise ValueError(f"workflow type {d.name!r} is registered twice")
            self._workflows[d.name] = d
        chosen: list[AnyInterceptor] = [
            i for i in getattr(client, "interceptors", ()) if isinstance(i, WorkerInterceptor)
        ]
        chosen += interceptors
        self._activity_chain = activity_chain(chosen)
        self._interceptor_classes = {name: workflow_classes(chosen, name) for name in self._workflows}
        self._activities: dict[str, ActivityDefinition] = {}
        for fn in activities:
            a = ActivityDefinition.from_callable(fn)
            if a.name in self._activities:
                raise ValueError(f"activity type {a.name!r} is registered twice")
            self._activities[a.name] = a
        self._sessions: SessionHost | None = None
        if max_concurrent_sessions:
            self._sessions = SessionHost(client, task_queue, self.identity, max_concurrent_sessions)
            self._activities[SESSION_CREATION_ACTIVITY] = self._sessions.definition()
        self._converter: DataConverter = client.data_converter or default_converter()
        self._local_activities = LocalActivityRunner(
            self._activities, self._converter, lambda: self._executor, self._activity_chain
        )
        self._cache = WorkflowCache(
            client.service, task_queue, max_cached_workflows, sticky_queue_schedule_to_start_timeout
        )
        self._metrics = getattr(getattr(client, "runtime", None), "metrics", None)
        if self._metrics is not None:
            self._metrics.add_worker(self)  # cache, poller and slot gauges (cadenza.sdk._metrics)
        self._activity_slots = asyncio.Semaphore(max_concurrent_activities)
        # Workflow tasks may be handled concurrently (each waits for its completion to be written),
        # so a few pollers keep many runs moving; a run never has two tasks at once. By default
        # each poller handles the task it got before polling again.
        self._workflow_tasks_inline = (max_concurrent_workflow_tasks or workflow_pollers) <= workflow_pollers
        self._workflow_task_slots = asyncio.Semaphore(max_concurrent_workflow_tasks or workflow_pollers)
        self._workflow_tasks_running: set[asyncio.Task[None]] = set()
        self._max_concurrent_activities = max_concurrent_activities
        self._executor = activity_executor
        self._own_executor = activity_executor is None
        self._workflow_pollers = workflow_pollers if self._workflows else 0
        self._activity_pollers = activity_pollers if self._activities else 0
        self._tasks: list[asyncio.Task[None]] = []
        self._activity_tasks: set[asyncio.Task[None]] = set()
        """Every activity attempt being run (from its poll to its report)."""
        self._running_activities: dict[bytes, _RunningActivity] = {}
        """The attempts whose function runs, by task token."""
        self._graceful_shutdown_s = graceful_shutdown_timeout.total_seconds()
        self._stopping = asyncio.Event()
        self._cancelling_activities = False
        """Set when shutdown cancels the running activities (those that start later are refused)."""
        self._abandoned = False
        """Set by ``abandon``: nothing is reported any more."""

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Worker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def start(self) -> None:
        if self._tasks:
            raise RuntimeError("worker already started")
        eager_workers = getattr(self.client, "_eager_workers", None)
        if self._workflow_pollers and eager_workers is not None:
            # Eager workflow start: this client's starts on this task queue may hand their first
            # workflow task straight to this worker (``Client.start_workflow(request_eager_start=)``).
            eager_workers.setdefault(self.task_queue, []).append(self)
        if (
            self._activities
            and self._executor is None
            and any(not a.is_async for a in self._activities.values())
        ):
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(self._max_concurrent_activities, 64), thread_name_prefix="cadenza-activity"
            )
        # With sticky execution, this worker's sticky queue gets pollers of its own: half as many
        # as the task queue, at least one.
        sticky = max(1, self._workflow_pollers // 2) if self._cache.queue and self._workflow_pollers else 0
        for i in range(self._workflow_pollers):
            self._tasks.append(
                asyncio.create_task(self._workflow_poll_loop(self.task_queue), name=f"wf-poller-{i}")
            )
        for i in range(sticky):
            self._tasks.append(
                asyncio.create_task(self._workflow_poll_loop(self._cache.queue), name=f"wf-sticky-poller-{i}")
            )
        for i in range(self._activity_pollers):
            self._tasks.append(
                asyncio.create_task(self._activity_poll_loop(self.task_queue), name=f"act-poller-{i}")
            )
        sessions = self._sessions
        if sessions is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._activity_poll_loop(sessions.creation_queue, sessions.has_capacity),
                    name="session-creation-poller",
                )
            )
            for i in range(2):
                self._tasks.append(
                    asyncio.create_task(self._activity_poll_loop(sessions.queue), name=f"session-poller-{i}")
                )

    async def run(self) -> None:
        self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stops polling and handling workflow tasks, lets running activities go on for up to
        ``graceful_shutdown_timeout``, then cancels them (``activity.is_cancelled()``; async ones
        get ``CancelledError``, sync ones ``CanceledError`` from their next heartbeat) and waits
        until each has ended and been reported. An attempt ended by the shutdown is reported
        failed, so the server retries it now rather than after its timeout."""
        self._stopping.set()
        self._leave_eager_start()
        for running in list(self._running_activities.values()):
            running.ctx.worker_shutdown.set()
        for t in (*self._tasks, *self._workflow_tasks_running):
            t.cancel()
        await asyncio.gather(*self._tasks, *self._workflow_tasks_running, return_exceptions=True)
        self._tasks.clear()
        await self._cache.close()  # their next workflow tasks go to the normal queue at once
        if self._activity_tasks and self._graceful_shutdown_s > 0:
            await asyncio.wait(set(self._activity_tasks), timeout=self._graceful_shutdown_s)
        self._cancel_activities()
        # Waiting here (rather than leaving the attempts behind) is what keeps a sync activity's
        # thread from outliving the worker and heartbeating into a loop that has closed.
        while self._activity_tasks:
            await asyncio.wait(set(self._activity_tasks))
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._metrics is not None:
            self._metrics.remove_worker(self)

    def _cancel_activities(self) -> None:
        self._cancelling_activities = True
        for running in list(self._running_activities.values()):
            running.ctx.cancelled.set()
            if running.is_async:
                running.task.cancel()

    async def abandon(self) -> None:
        """Stops at once without reporting anything, as if the process died (for failure tests)."""
        self._stopping.set()
        self._leave_eager_start()
        self._abandoned = True
        for running in list(self._running_activities.values()):
            running.ctx.cancelled.set()  # a sync activity's next heartbeat raises: its thread ends
        tasks = (*self._tasks, *self._workflow_tasks_running, *self._activity_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _user_activities(self) -> list[str]:
        return [name for name in self._activities if name != SESSION_CREATION_ACTIVITY]

    def _registered_workflows(self) -> str:
        return ", ".join(sorted(self._workflows)) or "none"

    # -- workflow tasks ----------------------------------------------------------------------------

    async def _workflow_poll_loop(self, queue: str) -> None:
        service = self.client.service
        ns = self.client.namespace
        inline = self._workflow_tasks_inline
        backoff = PollBackoff()
        while not self._stopping.is_set():
            if inline:
                try:
                    task = await service.poll_workflow_task_queue(ns, queue, identity=self.identity)
                except asyncio.CancelledError:
                    raise
                except Exception as e:
                    _log_poll_failure("workflow", e)
                    await asyncio.sleep(backoff.pause_s(e))
                    continue
                backoff.reset()
                if task is not None:
                    await self._run_workflow_task(task)
                continue
            # A task queue poller takes a slot before it polls; a sticky one once it has a task,
            # so an idle sticky poller does not keep a slot from the task queue's tasks.
            slot_first = queue == self.task_queue
            if slot_first:
                await self._workflow_task_slots.acquire()
            try:
                task = await service.poll_workflow_task_queue(ns, queue, identity=self.identity)
            except asyncio.CancelledError:
                if slot_first:
                    self._workflow_task_slots.release()
                raise
            except Exception as e:
                if slot_first:
                    self._workflow_task_slots.release()
                _log_poll_failure("workflow", e)
                await asyncio.sleep(backoff.pause_s(e))
                continue
            backoff.reset()
            if task is None:
                if slot_first:
                    self._workflow_task_slots.release()
                continue
            if not slot_first:
                await self._workflow_task_slots.acquire()
            t = asyncio.create_task(self._run_workflow_task(task))
            self._workflow_tasks_running.add(t)
            t.add_done_callback(self._workflow_task_done)

    # -- eager workflow start ------------------------------------------------------------------------

    def _leave_eager_start(self) -> None:
        workers = getattr(self.client, "_eager_workers", {}).get(self.task_queue)
        if workers is not None and self in workers:
            workers.remove(self)

    async def _reserve_eager_workflow_task(self, workflow_type: str) -> bool:
        """Whether this worker takes the first workflow task of a start of ``workflow_type`` now
        (it runs that type and has a free slot, which is then reserved for the task)."""
        if self._stopping.is_set() or not (
            workflow_type in self._workflows or DYNAMIC_WORKFLOW in self._workflows
        ):
            return False
        if self._workflow_tasks_inline:
            return True  # each poller handles its own task: an eager task runs beside them
        if self._workflow_task_slots.locked():
            return False
        await self._workflow_task_slots.acquire()  # free: returns at once
        return True

    def _take_eager_workflow_task(self, task: PollWorkflowTaskResponse | None) -> None:
        """Handles the first workflow task an eager start got back (None: it goes through matching,
        and the reserved slot is freed)."""
        slotted = not self._workflow_tasks_inline
        if task is None:
            if slotted:
                self._workflow_task_slots.release()
            return
        t = asyncio.create_task(self._run_workflow_task(task))
        self._workflow_tasks_running.add(t)
        t.add_done_callback(self._workflow_task_done if slotted else self._workflow_tasks_running.discard)

    def _workflow_task_done(self, t: asyncio.Task[None]) -> None:
        self._workflow_tasks_running.discard(t)
        self._workflow_task_slots.release()

    async def _run_workflow_task(self, task: PollWorkflowTaskResponse) -> None:
        try:
            if task.query is not None:
                await self._answer_query(task)
            else:
                await self._handle_workflow_task(task)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("workflow task of %s failed to report", task.workflow_execution.workflow_id)

    def _instance_for(
        self, task: PollWorkflowTaskResponse, defn: WorkflowDefinition
    ) -> tuple[WorkflowInstance, Sequence[HistoryEvent]]:
        """The run's instance and the events to apply (raises ``StickyCacheMiss``)."""
        return self._cache.instance_for(
            task,
            lambda: WorkflowInstance(
                defn,
                namespace=task.namespace,
                workflow_id=task.workflow_execution.workflow_id,
                run_id=task.workflow_execution.run_id,
                converter=self._converter,
                failure_exception_types=self._failure_exception_types,
                interceptor_classes=self._interceptor_classes.get(defn.name, ()),
            ),
        )

    async def _sticky_cache_miss(self, task: PollWorkflowTaskResponse, e: StickyCacheMiss) -> None:
        """Fails a task whose partial history does not follow what this worker has: the server
        clears the run's stickiness and sends the task again, in full, to the normal queue."""
        log.info("workflow %s: %s; asking for the whole history", task.workflow_execution.workflow_id, e)
        await self.client.service.respond_workflow_task_failed(
            RespondWorkflowTaskFailedRequest(
                task.task_token,
                "RESET_STICKY_TASK_QUEUE",
                self._converter.exception_to_failure(ApplicationError(str(e), type="StickyCacheMiss")),
                identity=self.identity,
            )
        )

    async def _handle_workflow_task(self, task: PollWorkflowTaskResponse) -> None:
        service = self.client.service
        run_id = task.workflow_execution.run_id
        defn = self._workflows.get(task.workflow_type) or self._workflows.get(DYNAMIC_WORKFLOW)
        if defn is None:
            await service.respond_workflow_task_failed(
                RespondWorkflowTaskFailedRequest(
                    task.task_token,
                    "WORKFLOW_TYPE_NOT_FOUND",
                    self._converter.exception_to_failure(
                        ApplicationError(
                            f"workflow type {task.workflow_type!r} is not registered on task queue "
                            f"{self.task_queue!r} (this worker has: {self._registered_workflows()})",
                            type="WorkflowTypeNotFound",
                        )
                    ),
                    identity=self.identity,
                )
            )
            return
        received = asyncio.get_running_loop().time()
        try:
            inst, events = self._instance_for(task, defn)
        except StickyCacheMiss as e:
            await self._sticky_cache_miss(task, e)
            return
        try:
            try:
                commands = inst.activate(events, task.updates)
            except StaleInstanceError:
                # The cached run saw a task that later failed or timed out: replay from scratch.
                self._cache.drop(run_id)
                try:
                    inst, events = self._instance_for(task, defn)
                except StickyCacheMiss as e:
                    await self._sticky_cache_miss(task, e)
                    return
                commands = inst.activate(events, task.updates)
            if self._metrics is not None:
                took = asyncio.get_running_loop().time() - received
                self._metrics.workflow_task_activated(task, events, took)
            if inst.task_open:
                commands = await self._local_activities.complete_task(inst, received)
        except (WorkflowTaskError, Exception) as e:
            self._cache.drop(run_id)  # failing the task clears the run's stickiness
            cause = "NON_DETERMINISTIC_ERROR" if isinstance(e, NondeterminismError) else "WORKFLOW_TASK_ERROR"
            err = e.cause if isinstance(e, WorkflowTaskError) and e.cause is not None else e
            if not isinstance(e, WorkflowTaskError):
                log.exception(
                    "workflow %s: unexpected error in the workflow runtime",
                    task.workflow_execution.workflow_id,
                    extra=_WORKFLOW_TASK_FAILURE,
                )
            else:
                log.warning(
                    "workflow %s: workflow task failed: %s",
                    task.workflow_execution.workflow_id,
                    e,
                    extra=_WORKFLOW_TASK_FAILURE,
                )
            failure = self._converter.exception_to_failure(err)
            if isinstance(e, NondeterminismError):
                failure["message"] = str(e)
            await service.respond_workflow_task_failed(
                RespondWorkflowTaskFailedRequest(task.task_token, cause, failure, identity=self.identity)
            )
            return
        if commands and all(c.command_type == CommandType.REJECT_WORKFLOW_UPDATE for c in commands):
            # Updates rejected and nothing else: the server drops a task it scheduled only for them,
            # so the events this instance saw for the task never happen. Replay next time.
            self._cache.drop(run_id)
        closing = any(c.command_type in _CLOSE_COMMAND_EVENTS for c in commands)
        if closing:
            self._cache.drop(run_id)
            inst.dispose()  # the run is over: free it now rather than in a full collection
        eager = await self._reserve_eager_activities(commands)
        try:
            started = await service.respond_workflow_task_completed(
                RespondWorkflowTaskCompletedRequest(
                    task.task_token,
                    commands,
                    identity=self.identity,
                    namespace=task.namespace,
                    eager_activity_ids=eager,
                    # Sticky execution: this worker keeps the run and polls its sticky queue.
                    sticky_task_queue="" if closing or self._cache.get(run_id) is None else self._cache.queue,
                    sticky_schedule_to_start_timeout_ms=self._cache.schedule_to_start_ms,
                )
            )
            for activity_task in (started or [])[: len(eager)]:
                self._start_activity(activity_task)  # its end releases the slot reserved for it
                eager.pop()
        except CadenzaError as e:
            # The task went stale (timed out, or new events made the server fail it): the instance
            # ran ahead of history, so drop it and replay next time.
            self._cache.drop(run_id, tell_server=True)
            log.info(
                "workflow %s: completing the task was refused: %s", task.workflow_execution.workflow_id, e
            )
        except BaseException:
            # The outcome is unknown (the server or its store failed, the call was cancelled): the
            # instance may be ahead of history too, and must not answer a later task of the run.
            self._cache.drop(run_id, tell_server=True)
            raise
        finally:
            for _ in eager:  # reserved, but not started here: matching hands them to a poller
                self._activity_slots.release()

    async def _reserve_eager_activities(self, commands: Sequence[Command]) -> list[str]:
        """Activity ids this worker asks to run itself (eager dispatch): scheduled by ``commands``,
        registered here and not on a queue of their own, one free activity slot reserved for each."""
        if not self._activity_pollers or self._stopping.is_set():
            return []
        ids: list[str] = []
        for c in commands:
            if c.command_type != CommandType.SCHEDULE_ACTIVITY_TASK or self._activity_slots.locked():
                continue
            a = c.attributes
            if a.get("activity_type") in self._activities and a.get("task_queue") in ("", self.task_queue):
                await self._activity_slots.acquire()
                ids.append(a["activity_id"])
        return ids

    async def _answer_query(self, task: PollWorkflowTaskResponse) -> None:
        service = self.client.service
        assert task.query is not None
        query_id = task.query.query_id
        defn = self._workflows.get(task.workflow_type) or self._workflows.get(DYNAMIC_WORKFLOW)
        try:
            if defn is None:
                raise ApplicationError(
                    f"workflow type {task.workflow_type!r} is not registered on this worker"
                )
            inst = self._cache.get(task.workflow_execution.run_id)
            if inst is None or inst.last_event_id != task.started_event_id:
                # Replay through the last completed task in a fresh instance (never advance the
                # cached one from a query), as a replay: its recorded markers and commands are
                # needed for that, and the query task's history stops at the task's start.
                if not task.started_event_id:
                    raise ApplicationError("the workflow has not run any code yet")
                history = await self._history_through_task(task)
                replayed = WorkflowInstance(
                    defn,
                    namespace=task.namespace,
                    workflow_id=task.workflow_execution.workflow_id,
                    run_id=task.workflow_execution.run_id,
                    converter=self._converter,
                    failure_exception_types=self._failure_exception_types,
                    interceptor_classes=self._interceptor_classes.get(defn.name, ()),
                )
                try:
                    replayed.replay(history)
                    result = replayed.query(
                        task.query.query_type,
                        task.query.query_args,
                        query_id=query_id,
                        header=task.query.header,
                    )
                finally:
                    replayed.dispose()
            else:
                result = inst.query(
                    task.query.query_type, task.query.query_args, query_id=query_id, header=task.query.header
                )
        except Exception as e:
            # A handler's failure already says what failed (an ApplicationError's message alone).
            message = str(e) if isinstance(e, QueryFailedError) else f"{type(e).__name__}: {e}"
            await service.respond_query_task_completed(task.namespace, query_id, error_message=message)
            return
        await service.respond_query_task_completed(task.namespace, query_id, result=result)

    async def _history_through_task(self, task: PollWorkflowTaskResponse) -> list[HistoryEvent]:
        """The run's history through the commands of the workflow task started at
        ``task.started_event_id`` (the last completed one): its WorkflowTaskCompleted and the
        command events right after it, which is what replaying that task as a replay needs."""
        started_id = task.started_event_id
        events: list[HistoryEvent] = []
        token: bytes | None = None
        while True:
            resp = await self.client.service.get_workflow_execution_history(
                GetHistoryRequest(task.namespace, task.workflow_execution, next_page_token=token)
            )
            events.extend(resp.events)
            token = resp.next_page_token
            complete = not token or not resp.events
            end = _end_of_task_commands(events, started_id, complete=complete)
            if end is not None:
                return events[:end]
            if complete:
                break
        raise ApplicationError(
            f"the history of run {task.workflow_execution.run_id!r} has no completed workflow task "
            f"started at event {started_id}"
        )

    # -- activities --------------------------------------------------------------------------------

    async def _activity_poll_loop(
        self, queue: str, ready: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Poll ``queue``; with ``ready``, wait for it before each poll (how a worker holding its
        maximum of sessions stops asking for more)."""
        service = self.client.service
        ns = self.client.namespace
        backoff = PollBackoff()
        while not self._stopping.is_set():
            if ready is not None:
                await ready()
            await self._activity_slots.acquire()
            try:
                task = await service.poll_activity_task_queue(ns, queue, identity=self.identity)
            except asyncio.CancelledError:
                self._activity_slots.release()
                raise
            except Exception as e:
                self._activity_slots.release()
                _log_poll_failure("activity", e)
                await asyncio.sleep(backoff.pause_s(e))
                continue
            backoff.reset()
            if task is None:
                self._activity_slots.release()
                continue
            self._start_activity(task)
            if ready is not None:
                # Let the new task take its session slot before deciding whether to poll again.
                await asyncio.sleep(0)

    def _start_activity(self, task: PollActivityTaskResponse) -> None:
        """Run one attempt in its own task, holding an activity slot until it ends."""
        t = asyncio.create_task(self._run_activity(task))
        self._activity_tasks.add(t)
        t.add_done_callback(self._activity_done)

    def _activity_done(self, t: asyncio.Task[None]) -> None:
        self._activity_tasks.discard(t)
        self._activity_slots.release()
        if not t.cancelled() and t.exception() is not None:
            # Reporting the outcome failed (server unreachable): the attempt will time out and be
            # retried by the server, so this is logged, not raised.
            log.warning("activity task ended with an unreported error: %s", t.exception())

    async def _run_activity(self, task: PollActivityTaskResponse) -> None:
        service = self.client.service
        conv = self._converter
        defn = self._activities.get(task.activity_type) or self._activities.get(DYNAMIC_ACTIVITY)
        if defn is None:
            await self._fail_attempt(
                task,
                ApplicationError(
                    f"activity type {task.activity_type!r} is not registered on task queue "
                    f"{self.task_queue!r} (this worker has: "
                    f"{', '.join(sorted(self._user_activities())) or 'none'})",
                    type="ActivityTypeNotFound",
                ),
            )
            return
        try:
            args = (
                dynamic_arguments(conv, task.input)
                if defn.dynamic
                else conv.from_payloads(task.input, defn.param_types)
            )
        except Exception as e:
            await self._fail_attempt(
                task,
                ApplicationError(
                    f"cannot decode the arguments of activity {task.activity_type!r}: {e}",
                    type="PayloadDecodeError",
                    non_retryable=True,
                ),
            )
            return
        if self._cancelling_activities:
            # Polled or handed over just before the shutdown: give it back to be run elsewhere.
            await self._fail_attempt(task, _worker_shutdown_error())
            return
        loop = asyncio.get_running_loop()
        heartbeater = Heartbeater(self, task, loop)
        ctx = ActivityContext(
            info=activity_info_from_task(task, conv),
            heartbeat=heartbeater.heartbeat_threadsafe if defn.is_async else heartbeater.heartbeat_sync,
            converter=conv,
        )
        if self._stopping.is_set():
            ctx.worker_shutdown.set()
        heartbeater.attach(ctx)
        current = asyncio.current_task()
        assert current is not None
        if defn.is_async:
            # A cancel requested by the server reaches an async activity as CancelledError; a sync
            # one cannot be interrupted and hears of it from ``is_cancelled`` or its heartbeats.
            heartbeater.on_cancel = current.cancel
        self._running_activities[task.task_token] = _RunningActivity(current, ctx, defn.is_async)
        try:
            if self._activity_chain is not None:
                chain = self._activity_chain
                result = await run_intercepted(
                    chain, task.header or {}, defn.fn, defn.is_async, args, ctx, self._executor
                )
            elif defn.is_async:
                with activity_mod._activity_context(ctx):
                    result = await defn.fn(*args)
            else:
                cv = contextvars.copy_context()

                def call() -> Any:
                    activity_mod._set_context(ctx)
                    return defn.fn(*args)

                result = await loop.run_in_executor(self._executor, cv.run, call)
        except activity_mod.CompleteAsyncError:
            return  # completed later through the client (``get_async_activity_handle``)
        except asyncio.CancelledError:
            if heartbeater.cancel_requested:
                await self._report(
                    service.respond_activity_task_canceled(task.task_token, None, identity=self.identity)
                )
                return
            if self._cancelling_activities and not self._abandoned:
                await self._fail_attempt(task, _worker_shutdown_error())
                return
            raise
        except Exception as e:
            if heartbeater.cancel_requested and is_cancel(e):
                await self._report(
                    service.respond_activity_task_canceled(task.task_token, None, identity=self.identity)
                )
                return
            if self._abandoned:
                return
            shut_down = self._cancelling_activities and is_cancel(e)
            await self._fail_attempt(task, _worker_shutdown_error() if shut_down else e)
            return
        finally:
            self._running_activities.pop(task.task_token, None)
            heartbeater.stop()
        if self._abandoned:
            return
        try:
            payloads = conv.to_payloads([result])
        except Exception as e:
            await self._fail_attempt(
                task,
                ApplicationError(
                    f"activity {task.activity_type!r} returned a value that cannot be encoded: {e}",
                    type="PayloadEncodeError",
                    non_retryable=True,
                ),
            )
            return
        await self._report(
            service.respond_activity_task_completed(task.task_token, payloads, identity=self.identity)
        )

    async def _fail_attempt(self, task: PollActivityTaskResponse, error: BaseException) -> None:
        """Log the failed attempt (as failed workflow tasks are) and report it to the server."""
        # The traceback is worth having for the code's own errors; the worker's are self-explanatory.
        user_error = error.__traceback__ is not None
        benign = isinstance(error, ApplicationError) and error.category is ApplicationErrorCategory.BENIGN
        log.log(
            logging.DEBUG if benign else logging.WARNING,
            "activity %s (id %s) of workflow %s failed on attempt %d: %s: %s",
            task.activity_type,
            task.activity_id,
            task.workflow_execution.workflow_id,
            task.attempt,
            type(error).__name__,
            error,
            exc_info=error if user_error else None,
        )
        await self._report(
            self.client.service.respond_activity_task_failed(
                task.task_token, self._converter.exception_to_failure(error), identity=self.identity
            )
        )

    async def _report(self, call: Any) -> None:
        try:
            await call
        except CadenzaError as e:
            # The attempt is no longer current (timed out and retried elsewhere): nothing to do.
            log.info("activity result was not accepted: %s", e)
