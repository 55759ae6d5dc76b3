"""Activities as seen from workflow code: scheduling, cancelling and resolving them.

Cancelling an activity (its handle's ``cancel()``, or cancelling a task that awaits it) follows its
:class:`ActivityCancellationType`, as temporalio's do: TRY_CANCEL asks the server to cancel it and
resolves at once with an :class:`ActivityError` whose cause is a :class:`CanceledError`;
WAIT_CANCELLATION_COMPLETED asks and resolves with whatever the activity then reports (cancelled,
or its result if it finished anyway); ABANDON asks nothing and resolves at once (the activity keeps
running). An activity whose schedule command has not left the task is simply withdrawn.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent
from cadenza.sdk._runtime.loop import label_future
from cadenza.sdk.exceptions import ActivityError, CanceledError, FailureError

if TYPE_CHECKING:
    from cadenza.sdk._runtime.commands import CommandRecord
    from cadenza.sdk._runtime.instance import WorkflowInstance

__all__ = ["Activities", "ActivityCancellationType", "ActivityHandle", "ActivityState"]

T = TypeVar("T")


class ActivityCancellationType(enum.IntEnum):
    """What cancelling an activity from workflow code does (temporalio's names and values)."""

    TRY_CANCEL = 0
    """Ask the server to cancel it and resolve at once as cancelled (the default)."""
    WAIT_CANCELLATION_COMPLETED = 1
    """Ask the server to cancel it and wait for the activity to report how it ended."""
    ABANDON = 2
    """Do not tell the server: resolve at once as cancelled and let the activity run on."""


class ActivityState:
    """One scheduled activity, from its command to its resolution."""

    __slots__ = (
        "activity_id",
        "activity_type",
        "cancel_requested",
        "cancellation_type",
        "done",
        "future",
        "record",
        "result_type",
        "scheduled_event_id",
    )

    def __init__(
        self, activity_id: str, activity_type: str, future: asyncio.Future[Any], result_type: Any
    ) -> None:
        self.activity_id = activity_id
        self.activity_type = activity_type
        self.future = future
        self.result_type = result_type
        self.record: CommandRecord | None = None
        self.scheduled_event_id = 0
        self.done = False
        """Resolved, by an event or by a cancel (TRY_CANCEL: later events for it are ignored)."""
        self.cancellation_type = ActivityCancellationType.TRY_CANCEL
        self.cancel_requested = False


class ActivityHandle(asyncio.Task[T], Generic[T]):
    """A started activity: await it for the result, ``cancel()`` it to cancel the activity.

    Cancelling follows the activity's :class:`ActivityCancellationType` (see the module docstring);
    the handle then resolves with an :class:`ActivityError` whose cause is a :class:`CanceledError`
    (or, waiting for the cancellation to complete, with what the activity reported). The same happens
    when a task awaiting the handle is cancelled.
    """

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        loop: asyncio.AbstractEventLoop,
        state: ActivityState,
        activities: Activities,
        name: str | None = None,
    ) -> None:
        super().__init__(coro, loop=loop, name=name)
        # Not ``_state``/``_loop``: asyncio.Future uses those names.
        self._activity_state = state
        self._activity_manager = activities

    @property
    def activity_id(self) -> str:
        """Id of the activity in this run."""
        return self._activity_state.activity_id

    @property
    def activity_type(self) -> str:
        """Registered name of the activity."""
        return self._activity_state.activity_type

    def cancel(self, msg: Any | None = None) -> bool:
        """Request cancellation of the activity; the handle then resolves with an ActivityError.

        The task itself is not cancelled: resolving the activity's future wakes it with the outcome,
        even if it has not started running yet.
        """
        if self.done():
            return False
        state = self._activity_state
        if state.future.done():
            # Its outcome came in the same activation as the cancellation (a completion and the
            # workflow's cancel request in one workflow task): there is nothing left to cancel, and
            # the cancellation must reach whoever awaits the handle rather than be lost with it.
            return super().cancel(msg)
        self._activity_manager.cancel(state)
        return True


class Activities:
    """The activities of one workflow run."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._seq = 0
        self._by_scheduled_id: dict[int, ActivityState] = {}

    def schedule(
        self,
        activity_type: str,
        attributes: dict[str, Any],
        result_type: Any,
        activity_id: str | None,
        cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    ) -> ActivityState:
        """Create the SCHEDULE_ACTIVITY_TASK command; ``attributes`` lacks only ``activity_id``."""
        instance = self._instance
        instance.check_can_command("execute an activity")
        self._seq += 1
        if activity_id is None:
            # Deterministic: the same code schedules activities in the same order on replay.
            activity_id = str(self._seq)
        attributes["activity_id"] = activity_id
        state = ActivityState(activity_id, activity_type, instance.loop.create_future(), result_type)
        state.cancellation_type = ActivityCancellationType(cancellation_type)
        label_future(state.future, f"activity {activity_type!r} (id {activity_id!r})")

        def on_recorded(event: HistoryEvent) -> None:
            state.scheduled_event_id = event.event_id
            self._by_scheduled_id[event.event_id] = state

        state.record = instance.commands.add(
            Command(CommandType.SCHEDULE_ACTIVITY_TASK, attributes), on_recorded
        )
        return state

    async def wait(self, state: ActivityState) -> Any:
        """The result of ``state``.

        If the awaiting task is cancelled (the workflow's cancellation, ``asyncio.wait_for`` or
        ``asyncio.timeout`` expiring, a cancelled ``gather``), the activity's cancellation is
        requested and the wait goes on for the outcome its cancellation type gives: an
        :class:`ActivityError` whose cause is a :class:`CanceledError`, as temporalio raises. If the
        activity had already resolved when the cancellation came, the ``CancelledError`` goes on
        to the code instead (there is nothing left to cancel, and the cancellation must not be lost).
        """
        future = state.future
        while True:
            waiter = asyncio.shield(future)
            if waiter is not future:
                label_future(waiter, f"activity {state.activity_type!r} (id {state.activity_id!r})")
            try:
                return await waiter
            except asyncio.CancelledError:
                if future.done():
                    raise
                self.cancel(state)

    def cancel(self, state: ActivityState, *, cause: FailureError | None = None) -> ActivityError:
        """Request cancellation of ``state`` as its cancellation type says (see the module docstring).

        Returns the error the awaiting code receives; its cause is ``cause`` (default: a
        :class:`CanceledError`). With ``cause`` (a failed session) the activity resolves at once
        whatever its type. A no-op (apart from the returned error) if the activity is already
        resolved or its cancellation already requested.
        """
        error = ActivityError(
            "Activity cancelled" if cause is None else f"Activity cancelled: {cause}",
            activity_type=state.activity_type,
            activity_id=state.activity_id,
            scheduled_event_id=state.scheduled_event_id,
            started_event_id=0,
            retry_state=None,
            cause=cause if cause is not None else CanceledError("Activity cancelled"),
        )
        if state.done or (state.cancel_requested and cause is None):
            return error
        kind = state.cancellation_type
        if not state.cancel_requested:
            state.cancel_requested = True
            record = state.record
            if record is not None and not record.sent:
                # Never left this task: withdraw the schedule command, there is nothing to cancel.
                record.removed = True
                kind = ActivityCancellationType.TRY_CANCEL
            elif kind is not ActivityCancellationType.ABANDON:
                self._instance.commands.add(
                    Command(
                        CommandType.REQUEST_CANCEL_ACTIVITY_TASK,
                        {"scheduled_event_id": state.scheduled_event_id},
                    )
                )
        if kind is ActivityCancellationType.WAIT_CANCELLATION_COMPLETED and cause is None:
            return error  # resolved by the outcome the activity reports
        state.done = True
        if not state.future.done():
            state.future.set_exception(error)
        return error

    def start(self, state: ActivityState) -> ActivityHandle[Any]:
        """A handle (task) awaiting ``state``."""
        return ActivityHandle(
            self.wait(state),
            loop=self._instance.loop,
            state=state,
            activities=self,
            name=f"activity {state.activity_type!r} (id {state.activity_id!r})",
        )

    # -- resolution events ---------------------------------------------------------------------------

    def _pending(self, event: HistoryEvent) -> ActivityState | None:
        state = self._by_scheduled_id.get(event.attributes.get("scheduled_event_id", 0))
        if state is None or state.done:
            return None
        state.done = True
        return state

    def apply_completed(self, event: HistoryEvent) -> None:
        """ActivityTaskCompleted: resolve with the decoded result."""
        state = self._pending(event)
        if state is None:
            return
        result = event.attributes.get("result")
        try:
            value = self._instance.converter.from_payloads(result, [state.result_type])[0] if result else None
        except Exception as err:
            state.future.set_exception(err)
            return
        if not state.future.done():
            state.future.set_result(value)

    def apply_failed(self, event: HistoryEvent) -> None:
        """ActivityTaskFailed / TimedOut: resolve with an ActivityError around the converted failure."""
        state = self._pending(event)
        if state is None:
            return
        failure = event.attributes.get("failure")
        cause: FailureError | None = (
            self._instance.converter.failure_to_exception(failure) if failure else None
        )
        timed_out = event.event_type is EventType.ACTIVITY_TASK_TIMED_OUT
        self._resolve_error(
            state, event, "Activity task timed out" if timed_out else "Activity task failed", cause
        )

    def apply_canceled(self, event: HistoryEvent) -> None:
        """ActivityTaskCanceled (only seen when the workflow did not already resolve it)."""
        state = self._pending(event)
        if state is None:
            return
        details = self._instance.converter.from_payloads(event.attributes.get("details"))
        self._resolve_error(state, event, "Activity cancelled", CanceledError("Activity cancelled", *details))

    def _resolve_error(
        self, state: ActivityState, event: HistoryEvent, message: str, cause: BaseException | None
    ) -> None:
        attrs = event.attributes
        error = ActivityError(
            message,
            activity_type=state.activity_type,
            activity_id=state.activity_id,
            scheduled_event_id=state.scheduled_event_id,
            started_event_id=attrs.get("started_event_id", 0),
            retry_state=attrs.get("retry_state"),
            cause=cause,
        )
        if not state.future.done():
            state.future.set_exception(error)
