"""Activities as seen from workflow code: scheduling, cancelling and resolving them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent
from cadenza.sdk._runtime.loop import label_future
from cadenza.sdk.exceptions import ActivityError, CanceledError, FailureError

if TYPE_CHECKING:
    from cadenza.sdk._runtime.commands import CommandRecord
    from cadenza.sdk._runtime.instance import WorkflowInstance

__all__ = ["Activities", "ActivityHandle", "ActivityState"]

T = TypeVar("T")


class ActivityState:
    """One scheduled activity, from its command to its resolution."""

    __slots__ = (
        "activity_id",
        "activity_type",
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


class ActivityHandle(asyncio.Task[T], Generic[T]):
    """A started activity: await it for the result, ``cancel()`` it to cancel the activity.

    Cancelling follows TRY_CANCEL semantics: a cancel request is sent to the engine and the handle
    resolves at once with an :class:`ActivityError` whose cause is a :class:`CanceledError` (the
    activity's outcome, as if the engine had reported it cancelled). This also happens when a task
    awaiting the handle is cancelled, since asyncio cancels what that task awaits.
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

        The task itself is not cancelled: resolving the activity's future wakes it with the error,
        even if it has not started running yet.
        """
        if self.done():
            return False
        self._activity_manager.cancel(self._activity_state)
        return True


class Activities:
    """The activities of one workflow run."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._seq = 0
        self._by_scheduled_id: dict[int, ActivityState] = {}

    def schedule(
        self, activity_type: str, attributes: dict[str, Any], result_type: Any, activity_id: str | None
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
        requested and the task's ``CancelledError`` propagates, as asyncio code expects.
        """
        try:
            return await state.future
        except asyncio.CancelledError:
            self.cancel(state)
            raise

    def cancel(self, state: ActivityState, *, cause: FailureError | None = None) -> ActivityError:
        """Request cancellation (TRY_CANCEL) and resolve ``state`` as cancelled.

        Returns the error the awaiting code receives; its cause is ``cause`` (default: a
        :class:`CanceledError`). A no-op (apart from the returned error) if the activity is already
        resolved.
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
        if not state.done:
            state.done = True
            record = state.record
            if record is not None and not record.sent:
                # Never left this task: withdraw the schedule command, there is nothing to cancel.
                record.removed = True
            else:
                self._instance.commands.add(
                    Command(
                        CommandType.REQUEST_CANCEL_ACTIVITY_TASK,
                        {"scheduled_event_id": state.scheduled_event_id},
                    )
                )
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
