"""One workflow run in a worker: applies history, runs workflow code, returns commands.

``activate`` walks a slice of history. Resolving events (activity results, timer fires, signals,
cancel requests) are applied as they come; at each WorkflowTaskStarted the code runs until nothing
is ready, exactly as it ran when that task was first processed. A task followed by
WorkflowTaskCompleted is a replay: its commands must match the command events recorded after the
completion. A task followed by WorkflowTaskFailed/TimedOut never happened and is skipped. The last
WorkflowTaskStarted of the slice is the task being processed now: its commands are returned.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cadenza.schemas.events import (
    CLOSE_EVENT_TYPES,
    Command,
    CommandType,
    EventType,
    HistoryEvent,
)
from cadenza.schemas.service import UpdateRequest
from cadenza.sdk._runtime.activities import (
    Activities,
    ActivityCancellationType,
    ActivityHandle,
    ActivityState,
)
from cadenza.sdk._runtime.children import ContinueAsNewError
from cadenza.sdk._runtime.commands import COMMAND_EVENT_TYPES, CommandQueue
from cadenza.sdk._runtime.conditions import Conditions
from cadenza.sdk._runtime.definitions import WorkflowDefinition
from cadenza.sdk._runtime.handlers import STACK_TRACE_QUERY, Handlers
from cadenza.sdk._runtime.info import (
    EPOCH,
    WorkflowInfo,
    decode_search_attributes,
    encode_search_attributes,
    info_from_started,
    search_attribute_types,
)
from cadenza.sdk._runtime.local_activities import LocalActivities, LocalActivityOutcome, LocalActivityRequest
from cadenza.sdk._runtime.loop import WorkflowEventLoop, WorkflowTimerHandle
from cadenza.sdk._runtime.markers import Patches, SideEffects, TaskMarkers, install_marker_keys
from cadenza.sdk._runtime.sessions import Sessions, active_session
from cadenza.sdk._runtime.timers import Timers
from cadenza.sdk._runtime.updates import WorkflowUpdates, accepted_in_task
from cadenza.sdk.converter import DataConverter, RawValue
from cadenza.sdk.exceptions import (
    ActivityError,
    CanceledError,
    ChildWorkflowError,
    FailureError,
    NondeterminismError,
    WorkflowTaskError,
)
from cadenza.sdk.interceptor import (
    ExecuteWorkflowInput,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowOutboundInterceptor,
    workflow_chain,
)
from cadenza.sdk.payload_converter import plain_headers
from cadenza.sdk.search_attributes import search_attribute_values

__all__ = [
    "STACK_TRACE_QUERY",
    "StaleInstanceError",
    "WorkflowEvictedError",
    "WorkflowInstance",
    "current_instance",
    "in_workflow",
]

_get_running_loop = asyncio.events._get_running_loop
_set_running_loop = asyncio.events._set_running_loop

EVICTION_ROUNDS = 5
"""Cancellation rounds ``evict`` gives a run's tasks before leaving the rest to the collector."""

_WFT_STARTED = EventType.WORKFLOW_TASK_STARTED
_WFT_COMPLETED = EventType.WORKFLOW_TASK_COMPLETED
_WFT_FAILED = EventType.WORKFLOW_TASK_FAILED
_WFT_TIMED_OUT = EventType.WORKFLOW_TASK_TIMED_OUT


class WorkflowEvictedError(BaseException):
    """Raised by a workflow call that would send a command or wait (an activity, a timer, a child,
    ``wait_condition``...) while an evicted run is torn down (``WorkflowInstance.evict``): it ends
    the ``finally:`` block that made it, as temporalio's eviction does. Calls that only read
    (``info``, ``now``, ``is_replaying``, the logger) keep working. A BaseException, so
    that workflow code catching ``Exception`` does not swallow it and carry on."""


class StaleInstanceError(RuntimeError):
    """The task this cached instance last answered did not complete; its state is no longer history's.

    The worker should drop the instance and replay the whole history in a new one.
    """


def current_instance(what: str = "This") -> WorkflowInstance:
    """The instance whose code is running now; ``RuntimeError`` outside workflow code."""
    loop = _get_running_loop()
    if isinstance(loop, WorkflowEventLoop):
        host = loop.host
        if isinstance(host, WorkflowInstance):
            return host
    raise RuntimeError(f"{what} can only be used in workflow code")


def in_workflow() -> bool:
    """True while workflow code (or a query handler) runs."""
    loop = _get_running_loop()
    return isinstance(loop, WorkflowEventLoop) and isinstance(loop.host, WorkflowInstance)


def is_cancelled_exception(exc: BaseException) -> bool:
    """Cancellation, directly or as the cause of an activity/child error (as temporalio decides)."""
    if isinstance(exc, asyncio.CancelledError | CanceledError):
        return True
    return isinstance(exc, ActivityError | ChildWorkflowError) and isinstance(exc.cause, CanceledError)


class WorkflowInstance:
    """The state of one workflow run inside a worker, advanced one history slice at a time.

    The worker creates one per run (``activate`` with the whole history) and may keep it to feed it
    only the new events of later tasks. Features beyond activities, timers, signals and queries plug
    in through two points: ``commands.add(command, on_recorded)`` queues a command (its matching
    against history on replay is automatic once its key fields are listed in ``commands.py``), and
    ``appliers[event_type]`` resolves what the engine reports back (child-workflow events, ...).

    Local activities keep a task open: when ``activate`` (or ``resume``) returns while
    :meth:`take_local_activities` has requests, the returned list is empty and the task is not
    finished. The worker runs the requests, hands each outcome to :meth:`resolve_local_activity`
    and calls :meth:`resume`, until the task's commands come back.
    """

    def __init__(
        self,
        defn: WorkflowDefinition,
        *,
        namespace: str,
        workflow_id: str,
        run_id: str,
        converter: DataConverter,
        failure_exception_types: Sequence[type[BaseException]] = (),
        interceptor_classes: Sequence[type[WorkflowInboundInterceptor]] = (),
    ) -> None:
        self.defn = defn
        self.failure_exception_types = tuple(defn.failure_exception_types) + tuple(failure_exception_types)
        """Exceptions that fail the run rather than the workflow task (the definition's, then the
        worker's), besides ``FailureError`` and ``TimeoutError``."""
        self.namespace = namespace
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.converter = converter
        # The I/O methods asyncio declares abstract are supplied as raising stubs after the class body.
        self.loop = WorkflowEventLoop(self)  # type: ignore[abstract]
        self.commands = CommandQueue()
        self.activities = Activities(self)
        self.timers = Timers(self.loop, self.commands)
        self.handlers = Handlers(self)
        self.updates = WorkflowUpdates(self)
        self.task_markers = TaskMarkers(self)
        """On replay, the markers the task being replayed recorded (what ``patched`` consults)."""
        self.patches = Patches(self)
        self.side_effects = SideEffects(self)
        self.local_activities = LocalActivities(self)
        self.sessions = Sessions(self)
        install_marker_keys(self)
        self._random: random.Random | None = None
        self.is_replaying = False
        """True while the code runs a task that history shows completed before."""
        self._info: WorkflowInfo | None = None
        self._now_us = 0
        self._last_event_id = 0
        self._object: Any = None
        self._main_task: asyncio.Task[Any] | None = None
        self._main_started = False
        self.started_attributes: dict[str, Any] = {}
        """The attributes of the run's WorkflowExecutionStarted event."""
        self._init_args: list[Any] | None = None
        self._terminal: Command | None = None
        self._closed = False
        self._task_error: BaseException | None = None
        self._nondeterminism: NondeterminismError | None = None
        self._broken: BaseException | None = None
        self._awaiting_completion = False
        self._task_open = False
        self._in_query = False
        self._evicting = False
        self.cancel_requested = False
        """Set once the run's cancellation has been requested."""
        self.conditions = Conditions(self.loop, self.on_callback_error)
        self.start_header: dict[str, Any] = {}
        """The header of WorkflowExecutionStarted (what the starter's interceptors put there)."""
        self._inbound: WorkflowInboundInterceptor | None = None
        self._outbound: WorkflowOutboundInterceptor | None = None
        if interceptor_classes:
            self._inbound, self._outbound = workflow_chain(interceptor_classes)
        # One small method per kind of event; new features (children, ...) add entries here.
        self.appliers: dict[EventType, Callable[[HistoryEvent], None]] = {
            EventType.WORKFLOW_EXECUTION_STARTED: self._apply_started,
            EventType.ACTIVITY_TASK_COMPLETED: self.activities.apply_completed,
            EventType.ACTIVITY_TASK_FAILED: self.activities.apply_failed,
            EventType.ACTIVITY_TASK_TIMED_OUT: self.activities.apply_failed,
            EventType.ACTIVITY_TASK_CANCELED: self.activities.apply_canceled,
            EventType.TIMER_FIRED: self.timers.apply_fired,
            EventType.WORKFLOW_EXECUTION_SIGNALED: self.handlers.apply_signaled,
            EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED: self._apply_cancel_requested,
        }

    def evict(self) -> None:
        """The worker lets an open run go (its cache is full, the run's task failed, the worker
        stops). Its pending tasks are cancelled and run here, on the run's own loop, so their
        ``finally:`` blocks run as workflow code; a workflow call in one raises
        ``WorkflowEvictedError``, which ends the block, and nothing is sent anywhere. Left to the
        garbage collector instead, those blocks would run outside any workflow and print a
        traceback per run when a worker stops. An instance in the middle of a task (waiting on
        local activities) is left alone: its task still needs it."""
        if "loop" not in self.__dict__ or self._task_open:
            return  # disposed already, or in use
        loop = self.loop
        if loop.has_pending_tasks():
            self._evicting = True
            previous = _get_running_loop()
            _set_running_loop(loop)
            try:
                # A few rounds: code that catches the cancellation may await something else.
                for _ in range(EVICTION_ROUNDS):
                    pending = loop.pending_tasks()
                    if not pending:
                        break
                    for task in pending:
                        task.cancel()
                    loop.run_ready()
            finally:
                _set_running_loop(previous)
            for task in loop.finished_tasks():
                if not task.cancelled():
                    task.exception()  # retrieved: asyncio does not log it when the task is freed
        self.dispose()

    def dispose(self) -> None:
        """Breaks the run's reference cycles once its worker is done with it (the run closed).

        Its parts, its loop and the bound methods in ``appliers`` all point back at the instance,
        so without this a finished run is freed only by the collector's full passes: some seventy
        objects per workflow that piled up in the oldest generation and made those passes a fifth
        of a busy worker's time. A loop with tasks still pending is left alone (asyncio reports a
        pending task that is destroyed); the collector takes that rarer case."""
        if "loop" not in self.__dict__ or self.loop.has_pending_tasks():
            return  # disposed already, or still running
        parts = [
            self.loop,
            self.commands,
            self.activities,
            self.timers,
            self.handlers,
            self.task_markers,
            self.patches,
            self.side_effects,
            self.local_activities,
            self.sessions,
            self.conditions,
        ]
        self.__dict__.clear()
        for part in parts:
            vars(part).clear()

    @property
    def random(self) -> random.Random:
        """Seeded from the run id: the same draws on every replay. Made on first use, since
        seeding from a string hashes it and most workflows never draw."""
        if self._random is None:
            self._random = random.Random(self.run_id)
        return self._random

    # -- the worker's interface ----------------------------------------------------------------------

    @property
    def last_event_id(self) -> int:
        """Id of the last event applied so far (0 before the first activation)."""
        return self._last_event_id

    @property
    def info(self) -> WorkflowInfo:
        """Facts about the run (available once WorkflowExecutionStarted has been applied)."""
        if self._info is None:
            raise RuntimeError("Workflow info is not known before WorkflowExecutionStarted is applied")
        return self._info

    def activate(
        self, events: Sequence[HistoryEvent], updates: Sequence[UpdateRequest] = ()
    ) -> list[Command]:
        """Apply the next slice of history and return the commands of its last workflow task.

        ``updates``: the workflow updates the task carries (validated and run in it).

        Raises :class:`WorkflowTaskError` (or its subclass ``NondeterminismError``) when the workflow
        code fails the task; the instance is unusable afterwards. Returns an empty list with the task
        left open when the code waits on local activities (see the class docstring).
        """
        self._check_usable()
        if self._task_open:
            raise RuntimeError("The current workflow task waits on local activities: resume() it first")
        if not events:
            return []
        expected = self._last_event_id + 1
        if events[0].event_id != expected:
            raise ValueError(f"History slice starts at event {events[0].event_id}, expected event {expected}")
        return self._on_workflow_loop(lambda: self._activate(events, updates))

    def replay(self, events: Sequence[HistoryEvent]) -> None:
        """Replay a whole history that ends with the command events of a completed workflow task
        (how a query sees a run no worker has cached).

        Every task runs as a replay, the last one included: ``patched`` answers from the recorded
        markers, and every command the code produced must be in history, so the state a query then
        reads is the one the run really reached. Raises ``NondeterminismError`` otherwise.
        """
        if not events or events[0].event_id != 1:
            raise ValueError("replay() needs the history from event 1")
        last = events[-1]
        if last.event_type is _WFT_STARTED:
            raise ValueError("replay() needs a history whose last workflow task completed")
        self.activate(events)
        # ``activate`` checks a task's commands when the next task starts (or the run closes);
        # nothing follows the last task here, so check its commands now.
        try:
            self.commands.check_all_recorded(last.event_id + 1)
        except BaseException as exc:
            self._broken = exc
            raise

    def take_local_activities(self) -> list[LocalActivityRequest]:
        """Local activities the open task waits on that the worker has not taken yet."""
        return self.local_activities.take_requests()

    def resolve_local_activity(self, seq: int, outcome: LocalActivityOutcome) -> None:
        """Hand back how local activity ``seq`` ended; the code sees it at the next :meth:`resume`."""
        self._check_usable()
        self.local_activities.resolve(seq, outcome)

    def resume(self) -> list[Command]:
        """Continue the open task after its local activities were resolved; returns its commands
        (or an empty list, with new requests to run, if the code started more)."""
        self._check_usable()
        if not self._task_open:
            raise RuntimeError("No workflow task is open")
        return self._on_workflow_loop(self._continue_task)

    @property
    def task_open(self) -> bool:
        """True while the current task waits on local activities."""
        return self._task_open

    def query(
        self,
        name: str,
        args: list[dict[str, Any]] | None,
        *,
        query_id: str = "",
        header: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Answer query ``name`` from the current state: payloads in, payloads out."""
        previous = _get_running_loop()
        _set_running_loop(self.loop)
        self._in_query = True
        try:
            return self.handlers.query(name, args, query_id=query_id, header=header)
        finally:
            self._in_query = False
            _set_running_loop(previous)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise RuntimeError(
                "This workflow instance failed an earlier activation and cannot be used; "
                "replay the history in a new instance"
            ) from self._broken

    def _on_workflow_loop(self, step: Callable[[], list[Command]]) -> list[Command]:
        # The worker calls us from its own running loop: swap ours in for the step, then restore it.
        previous = _get_running_loop()
        _set_running_loop(self.loop)
        try:
            return step()
        except BaseException as exc:
            self._broken = exc
            raise
        finally:
            _set_running_loop(previous)

    # -- walking history -----------------------------------------------------------------------------

    def _activate(
        self, events: Sequence[HistoryEvent], updates: Sequence[UpdateRequest] = ()
    ) -> list[Command]:
        commands: list[Command] = []
        appliers = self.appliers
        queue = self.commands
        last_index = len(events) - 1
        for index, event in enumerate(events):
            event_type = event.event_type
            if event_type is _WFT_STARTED:
                if index == last_index:
                    self.task_markers.clear()
                    if updates:
                        self.updates.deliver_requests(updates)
                    commands = self._run_task(event, replaying=False)
                    self._awaiting_completion = True
                elif events[index + 1].event_type is _WFT_COMPLETED:
                    self.task_markers.look_ahead(events, index + 1)
                    accepted = accepted_in_task(events, index + 1)
                    if accepted:
                        self.updates.deliver_accepted(accepted)
                    self._run_task(event, replaying=True)
                # Otherwise a failed or timed-out attempt: whatever it produced never happened.
            elif event_type in COMMAND_EVENT_TYPES:
                queue.match(event)
            elif event_type is _WFT_COMPLETED:
                self._awaiting_completion = False
            elif event_type is _WFT_FAILED or event_type is _WFT_TIMED_OUT:
                if self._awaiting_completion:
                    raise StaleInstanceError(
                        f"Workflow task started at event {event.event_id - 1} did not complete "
                        f"({event_type.pascal_name}); replay from event 1"
                    )
            else:
                applier = appliers.get(event_type)
                if applier is not None:
                    applier(event)
            self._last_event_id = event.event_id
        last = events[-1]
        if last.event_type in CLOSE_EVENT_TYPES:
            # A closed history (a replayer's): the code must not have produced more than history has.
            queue.check_all_recorded(last.event_id)
        return commands

    def _run_task(self, started: HistoryEvent, *, replaying: bool) -> list[Command]:
        self.commands.check_all_recorded(started.event_id)
        self._now_us = started.event_time
        self.is_replaying = replaying
        return self._continue_task()

    def _continue_task(self) -> list[Command]:
        self._task_open = False
        self._run_until_idle()
        if self._nondeterminism is not None:
            raise self._nondeterminism
        if self._task_error is not None:
            raise WorkflowTaskError(self._task_error)
        if self.local_activities.has_unresolved():
            if self.is_replaying:
                # On replay recorded markers resolve local activities at once.
                raise self.local_activities.missing_on_replay()
            self._task_open = True
            return []
        terminal = None
        if self._terminal is not None and not self._closed:
            terminal = self._terminal
            self._closed = True
        commands = self.commands.finish_task(terminal)
        rejections = self.updates.take_rejections()
        # Rejections are never recorded, so they stay out of the queue replay checks; first, since
        # a command that closes the run must come last.
        return rejections + commands if rejections else commands

    def _run_until_idle(self) -> None:
        loop = self.loop
        while True:
            loop.run_ready()
            if self._task_error is not None or not self.conditions.check():
                return

    # -- appliers ------------------------------------------------------------------------------------

    def _apply_started(self, event: HistoryEvent) -> None:
        self._info = info_from_started(
            event,
            namespace=self.namespace,
            workflow_id=self.workflow_id,
            run_id=self.run_id,
            default_type=self.defn.name,
            converter=self.converter,
        )
        self._now_us = event.event_time
        self.started_attributes = event.attributes
        self.start_header = event.attributes.get("header") or {}
        self._main_task = self.loop.create_task(
            self._run_main(event.attributes.get("input")), name=f"{self.defn.name} (run)"
        )
        self._main_task.add_done_callback(self._on_main_done)

    def _apply_cancel_requested(self, event: HistoryEvent) -> None:
        self.cancel_requested = True
        main = self._main_task
        if main is None or main.done():
            return
        if self._main_started:
            main.cancel()
        else:
            # Requested before the code ever ran: cancelling now would end the task before its
            # first line. Let the code start, then cancel what it waits on, so it can clean up.
            self.loop.call_soon(self._cancel_main)

    def _cancel_main(self) -> None:
        if self._main_task is not None and not self._main_task.done():
            self._main_task.cancel()

    # -- running workflow code -----------------------------------------------------------------------

    def workflow_object(self) -> Any:
        """The instance of the workflow class (created on first use)."""
        if self._object is None:
            # With ``@workflow.init`` the constructor takes the run's arguments (decoded once).
            self._object = self.defn.cls(*self._run_args()) if self.defn.init_takes_args else self.defn.cls()
        return self._object

    def _run_args(self) -> list[Any]:
        if self._init_args is None:
            payloads = self.started_attributes.get("input")
            if self.defn.dynamic:
                # A dynamic workflow takes one argument: the arguments, undecoded.
                raw = self.converter.from_payloads(payloads, [RawValue] * len(payloads or []))
                self._init_args = [raw]
            else:
                self._init_args = self.converter.from_payloads(payloads, self.defn.run_param_types)
        return self._init_args

    async def _run_main(self, payloads: list[dict[str, Any]] | None) -> Any:
        self._main_started = True
        if self.info.workflow_type != self.defn.name and not self.defn.dynamic:
            raise TypeError(
                f"History is of workflow type {self.info.workflow_type!r}, "
                f"but the definition given is {self.defn.name!r}"
            )
        args = self._run_args()
        if self._inbound is not None:
            run = self.defn.run_fn
            return await self._inbound.execute_workflow(
                ExecuteWorkflowInput(
                    self.defn.name, args, self.start_header, lambda a: run(self.workflow_object(), *a)
                )
            )
        return await self.defn.run_fn(self.workflow_object(), *args)

    def _on_main_done(self, task: asyncio.Task[Any]) -> None:
        if self._terminal is not None:
            return
        exc: BaseException | None = asyncio.CancelledError() if task.cancelled() else task.exception()
        if exc is None:
            try:
                result = self.converter.to_payloads([task.result()])
            except Exception as err:
                self._task_error = err
                return
            self._terminal = Command(CommandType.COMPLETE_WORKFLOW_EXECUTION, {"result": result})
        elif isinstance(exc, ContinueAsNewError):
            self._terminal = exc.command
        elif self.cancel_requested and is_cancelled_exception(exc):
            self._terminal = Command(CommandType.CANCEL_WORKFLOW_EXECUTION, {"details": None})
        elif self.fails_workflow(exc):
            self.fail(exc)
        else:
            # A bug (TypeError, KeyError, ...): fail the task, not the workflow, so a fix can resume it.
            self._task_error = exc

    def fails_workflow(self, exc: BaseException) -> bool:
        """Whether ``exc`` escaping the workflow code fails the run (as temporalio decides):
        a ``FailureError`` (``ApplicationError``, ...), the builtin ``TimeoutError`` (what
        ``wait_condition`` and ``asyncio.wait_for`` raise), or an instance of a type listed in
        ``failure_exception_types``. Anything else fails the workflow task, so a fix resumes it."""
        if isinstance(exc, FailureError | builtins.TimeoutError):
            return True
        return isinstance(exc, self.failure_exception_types)

    def fail(self, exc: BaseException) -> None:
        """Close the run as failed with ``exc`` (unless it already has an outcome)."""
        if self._terminal is not None:
            return
        self._terminal = Command(
            CommandType.FAIL_WORKFLOW_EXECUTION, {"failure": self.converter.exception_to_failure(exc)}
        )

    def on_callback_error(self, exc: BaseException) -> None:
        """A loop callback raised (part of the loop's host interface)."""
        self._task_error = exc

    def report_nondeterminism(self, error: NondeterminismError) -> None:
        """Fail the task with ``error`` even if workflow code catches it."""
        if self._nondeterminism is None:
            self._nondeterminism = error

    # -- what workflow code calls --------------------------------------------------------------------

    def check_can_command(self, what: str) -> None:
        """Refuse to create commands from a query handler, or while the run is evicted."""
        if self._evicting:
            raise WorkflowEvictedError(f"cannot {what}: the run is being evicted from this worker")
        if self._in_query:
            raise RuntimeError(f"Cannot {what} in a query handler: queries must not change the workflow")

    def now_us(self) -> int:
        """Workflow time in microseconds: the start of the workflow task being processed."""
        return self._now_us

    def now(self) -> datetime:
        """Workflow time as an aware UTC datetime."""
        return EPOCH + timedelta(microseconds=self._now_us)

    def loop_time(self) -> float:
        """Workflow time in seconds (the loop's clock)."""
        return self._now_us / 1_000_000

    def _schedule_activity(
        self,
        activity_type: str,
        attributes: dict[str, Any],
        result_type: Any,
        activity_id: str | None,
        explicit_queue: bool,
        cancellation_type: ActivityCancellationType,
    ) -> ActivityState:
        session = active_session()
        if session is not None:
            session.prepare(attributes, explicit_queue)
        args = attributes.pop("_args", ())

        if self._outbound is None:
            state = self.activities.schedule(
                activity_type, attributes, result_type, activity_id, cancellation_type
            )
        else:
            outbound = StartActivityInput(
                activity_type, activity_id, attributes.setdefault("header", {}), args=list(args)
            )
            sent_args = outbound.args

            def schedule() -> ActivityState:
                # An interceptor may have extended the header in place or replaced it
                # (temporalio's samples do ``input.headers = {**input.headers, ...}``).
                attributes["header"] = plain_headers(outbound.headers)
                if outbound.args is not sent_args or outbound.args != list(args):
                    attributes["input"] = self.converter.to_payloads(list(outbound.args))
                return self.activities.schedule(
                    activity_type, attributes, result_type, activity_id, cancellation_type
                )

            outbound.schedule = schedule
            state = self._outbound.start_activity(outbound)
        if session is not None:
            session.track(state)
        return state

    def start_activity(
        self,
        activity_type: str,
        attributes: dict[str, Any],
        result_type: Any,
        activity_id: str | None,
        *,
        explicit_queue: bool = True,
        cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    ) -> ActivityHandle[Any]:
        """Schedule an activity and return a handle (task) for it.

        Inside a worker session, an activity whose queue was not chosen explicitly
        (``explicit_queue=False``) goes to the session's worker.
        """
        state = self._schedule_activity(
            activity_type, attributes, result_type, activity_id, explicit_queue, cancellation_type
        )
        return self.activities.start(state)

    async def execute_activity(
        self,
        activity_type: str,
        attributes: dict[str, Any],
        result_type: Any,
        activity_id: str | None,
        *,
        explicit_queue: bool = True,
        cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    ) -> Any:
        """Schedule an activity and wait for its result (no extra task, unlike start_activity)."""
        state = self._schedule_activity(
            activity_type, attributes, result_type, activity_id, explicit_queue, cancellation_type
        )
        return await self.activities.wait(state)

    def start_timer(self, delay: float, handle: WorkflowTimerHandle) -> None:
        """Turn a ``call_later`` handle into a durable timer (the loop's host interface)."""
        self.check_can_command("start a timer")
        self.timers.start(delay, handle)

    def cancel_timer(self, handle: WorkflowTimerHandle) -> None:
        """A timer's handle was cancelled before it fired (the loop's host interface)."""
        self.timers.cancel(handle)

    async def wait_condition(self, fn: Callable[[], bool], timeout: float | None) -> None:
        """Wait until ``fn()`` is true, checked whenever the code has nothing else to run."""
        if self._evicting:
            raise WorkflowEvictedError(
                "cannot wait for a condition: the run is being evicted from this worker"
            )
        await self.conditions.wait(fn, timeout)

    def set_signal_handler(self, name: str, handler: Callable[..., Any] | None) -> None:
        """Install (or, with None, remove) a handler; signals buffered under ``name`` go to it."""
        self.handlers.set_signal_handler(name, handler)

    def set_query_handler(self, name: str, handler: Callable[..., Any] | None) -> None:
        """Install (or, with None, remove) a query handler."""
        self.handlers.set_query_handler(name, handler)

    def get_handler(self, kind: str, name: str) -> Callable[..., Any] | None:
        """The handler of ``kind`` (signal, query, update) for ``name`` ("" for the dynamic one):
        a handler method bound to the workflow object, or the function given at run time."""
        table: Mapping[str, Any]
        if kind == "signal":
            table = self.handlers._signals
        elif kind == "query":
            table = self.handlers._queries
        else:
            table = self.updates._handlers
        defn = table.get(name)
        if defn is None:
            return None
        fn: Callable[..., Any] = defn.fn
        return fn.__get__(self.workflow_object()) if defn.is_method else fn

    def set_update_handler(
        self, name: str, handler: Callable[..., Any] | None, validator: Callable[..., Any] | None = None
    ) -> None:
        """Install (or, with None, remove) an update handler (and its validator)."""
        self.updates.set_handler(name, handler, validator)

    def all_handlers_finished(self) -> bool:
        """No update handler and no async signal handler is still running."""
        return self.updates.running == 0 and self.handlers.running == 0

    def upsert_search_attributes(self, values: Any) -> None:
        """Record new values for search attributes (a dict, or typed updates; None removes one);
        ``info().search_attributes`` shows them at once."""
        self.check_can_command("upsert search attributes")
        plain, types = search_attribute_values(values)
        encoded = encode_search_attributes(plain, types)
        if not encoded:
            return
        self.commands.add(
            Command(CommandType.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, {"search_attributes": encoded})
        )
        info = self.info
        merged = {**info.search_attributes, **decode_search_attributes(self.converter, encoded)}
        merged_types = {**info.search_attribute_types, **search_attribute_types(encoded)}
        for name, value in plain.items():
            if value is None:
                merged.pop(name, None)
                merged_types.pop(name, None)
        self._info = dataclasses.replace(info, search_attributes=merged, search_attribute_types=merged_types)
