"""Local activities as seen from workflow code: requests the worker runs, outcomes recorded as markers.

A local activity never reaches the engine's task queues. When workflow code calls
``execute_local_activity``, the instance reserves the task's RECORD_MARKER command at that point (so
markers keep the order the code asked for them, whether resolved now or read back on replay) and
keeps the request pending. The workflow task then stays open: the worker takes the pending requests
(:meth:`LocalActivities.take_requests`), runs them in its own process, hands back each outcome
(:meth:`LocalActivities.resolve`) and resumes the task; the marker command is completed from the
outcome. On replay the marker recorded by the task supplies the outcome at once and the function is
not called.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from cadenza.schemas.events import Command, CommandType
from cadenza.sdk._runtime.loop import label_future
from cadenza.sdk._runtime.markers import LOCAL_ACTIVITY_MARKER, detail, marker_command
from cadenza.sdk.activity import ActivityDefinition
from cadenza.sdk.common import ARG_UNSET, RetryPolicy, positional_args, timedelta_to_ms
from cadenza.sdk.exceptions import ActivityError, FailureError, NondeterminismError
from cadenza.sdk.interceptor import StartLocalActivityInput
from cadenza.sdk.payload_converter import plain_headers

if TYPE_CHECKING:
    from cadenza.sdk._runtime.commands import CommandRecord
    from cadenza.sdk._runtime.instance import WorkflowInstance

__all__ = ["LocalActivities", "LocalActivityOutcome", "LocalActivityRequest", "execute_local_activity"]

ReturnT = TypeVar("ReturnT")


@dataclass(frozen=True)
class LocalActivityRequest:
    """A local activity the worker must run before the workflow task can complete."""

    seq: int
    """Sequence number within the run (the marker's key, with the type)."""
    activity_id: str
    """Id of the activity within the run."""
    activity_type: str
    """Registered activity name."""
    input: list[dict[str, Any]]
    """Encoded arguments."""
    start_to_close_timeout: timedelta | None
    """Limit of one attempt."""
    schedule_to_close_timeout: timedelta | None
    """Limit of all attempts together."""
    retry_policy: RetryPolicy | None
    """How failed attempts are retried (None: the default policy)."""
    header: dict[str, Any] = field(default_factory=dict)
    """What the workflow's outbound interceptors put on it, for the activity's inbound ones."""


@dataclass(frozen=True)
class LocalActivityOutcome:
    """How a local activity ended: ``result`` payloads, or a ``failure`` dict."""

    result: list[dict[str, Any]] | None = None
    """Encoded result on success."""
    failure: dict[str, Any] | None = None
    """The failure of the last attempt (``cadenza.schemas.events`` failure dict), if it failed."""
    attempt: int = 1
    """Attempts made."""
    retry_state: str | None = None
    """Why retrying stopped, when it failed (a ``RetryState`` value)."""


class _State:
    __slots__ = ("dispatched", "done", "future", "record", "request", "result_type")

    def __init__(
        self,
        request: LocalActivityRequest,
        future: asyncio.Future[Any],
        record: CommandRecord,
        result_type: Any,
    ) -> None:
        self.request = request
        self.future = future
        self.record = record
        self.result_type = result_type
        self.dispatched = False
        self.done = False


class LocalActivities:
    """The local activities of one workflow run."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self._instance = instance
        self._seq = 0
        self._unresolved: dict[int, _State] = {}

    def has_unresolved(self) -> bool:
        """True while some local activity of the current task awaits its outcome."""
        return bool(self._unresolved)

    def missing_on_replay(self) -> NondeterminismError:
        """The error for a replayed task that left a local activity without its recorded marker."""
        request = next(iter(self._unresolved.values())).request
        return self._instance.task_markers.missing(
            f"local activity {request.activity_type!r} (#{request.seq}) to have been recorded"
        )

    def take_requests(self) -> list[LocalActivityRequest]:
        """The requests not yet handed to the worker, in the order the code made them."""
        taken = []
        for state in self._unresolved.values():
            if not state.dispatched:
                state.dispatched = True
                taken.append(state.request)
        return taken

    async def execute(
        self,
        activity_type: str,
        args: list[dict[str, Any]],
        *,
        activity_id: str | None,
        start_to_close_timeout: timedelta | None,
        schedule_to_close_timeout: timedelta | None,
        retry_policy: RetryPolicy | None,
        result_type: Any,
        header: dict[str, Any] | None = None,
    ) -> Any:
        """Run a local activity and return its (decoded) result; failures raise ActivityError."""
        instance = self._instance
        instance.check_can_command("execute a local activity")
        self._seq += 1
        seq = self._seq
        request = LocalActivityRequest(
            seq=seq,
            activity_id=activity_id or f"local-{seq}",
            activity_type=activity_type,
            input=args,
            start_to_close_timeout=start_to_close_timeout,
            schedule_to_close_timeout=schedule_to_close_timeout,
            retry_policy=retry_policy,
            header=header or {},
        )
        converter = instance.converter
        command = marker_command(
            converter,
            LOCAL_ACTIVITY_MARKER,
            {"seq": seq, "activity_id": request.activity_id, "activity_type": activity_type},
        )
        # The command's place among the task's commands is taken now; its outcome is filled in later.
        record = instance.commands.add(command)
        state = _State(request, instance.loop.create_future(), record, result_type)
        label_future(state.future, f"local activity {activity_type!r} (id {request.activity_id!r})")
        event = instance.task_markers.find(LOCAL_ACTIVITY_MARKER, command.attributes)
        if instance.is_replaying and event is not None:
            self._complete(state, Command(CommandType.RECORD_MARKER, dict(event.attributes)))
        else:
            # On replay without a marker the code may still abandon it, as it did the first time;
            # if it does not, the task ends with it unresolved (see ``missing_on_replay``).
            self._unresolved[seq] = state
        try:
            return await state.future
        except asyncio.CancelledError:
            if not state.dispatched and not state.done:
                # Abandoned before the worker took it: it never ran, so nothing is recorded.
                state.done = True
                record.removed = True
                self._unresolved.pop(seq, None)
            raise

    def resolve(self, seq: int, outcome: LocalActivityOutcome) -> None:
        """Hand back the outcome of request ``seq`` (its marker command is completed from it)."""
        state = self._unresolved.pop(seq, None)
        if state is None:
            raise KeyError(f"no local activity #{seq} awaits an outcome")
        details = dict(state.record.command.attributes["details"])
        converter = self._instance.converter
        details["attempt"] = converter.to_payloads([outcome.attempt])
        if outcome.failure is None:
            details["result"] = outcome.result or converter.to_payloads([None])
        elif outcome.retry_state is not None:
            details["retry_state"] = converter.to_payloads([outcome.retry_state])
        attributes = {**state.record.command.attributes, "details": details, "failure": outcome.failure}
        self._complete(state, Command(CommandType.RECORD_MARKER, attributes))

    def _complete(self, state: _State, command: Command) -> None:
        state.done = True
        state.record.command = Command(
            CommandType.RECORD_MARKER,
            {
                "marker_name": LOCAL_ACTIVITY_MARKER,
                "details": command.attributes.get("details") or {},
                "header": command.attributes.get("header") or {},
                "failure": command.attributes.get("failure"),
            },
        )
        attributes = state.record.command.attributes
        converter = self._instance.converter
        future = state.future
        if future.done():
            return
        failure = attributes.get("failure")
        if failure is not None:
            cause: FailureError = converter.failure_to_exception(failure)
            future.set_exception(
                ActivityError(
                    "Local activity failed",
                    activity_type=state.request.activity_type,
                    activity_id=state.request.activity_id,
                    scheduled_event_id=0,
                    started_event_id=0,
                    retry_state=detail(converter, attributes, "retry_state"),
                    cause=cause,
                )
            )
            return
        try:
            value = detail(converter, attributes, "result", state.result_type)
        except Exception as err:
            future.set_exception(err)
            return
        future.set_result(value)


def _instance(what: str) -> WorkflowInstance:
    # Imported here: the instance module imports this one.
    from cadenza.sdk._runtime.instance import current_instance

    return current_instance(what)


async def execute_local_activity(
    activity: Callable[..., Awaitable[ReturnT]] | Callable[..., ReturnT] | str,
    *arguments: Any,
    arg: Any = ARG_UNSET,
    args: Sequence[Any] | None = None,
    start_to_close_timeout: timedelta | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    activity_id: str | None = None,
    result_type: Any = None,
) -> ReturnT:
    """Run a short activity inside the worker running this workflow task, without the task queues.

    The worker that runs the workflow task runs the function (it must be among the worker's
    ``activities``), retrying failed attempts per ``retry_policy`` (default: the default
    ``RetryPolicy``) and recording the outcome as a marker, which replays read instead of calling
    it again. Every attempt happens within the workflow task: retries stop, and an attempt still
    running is abandoned with a ``TimeoutError``, when the task's time budget (80% of the
    workflow task timeout) runs out, so use ordinary activities for long work. Failures raise
    :class:`ActivityError`. One of the two timeouts is required.
    """
    instance = _instance("workflow.execute_local_activity()")
    args = positional_args(arguments, args, "workflow.execute_local_activity()", arg)
    if isinstance(activity, str):
        activity_type = activity
    else:
        activity_defn = ActivityDefinition.from_callable(activity)
        activity_type = activity_defn.name
        if result_type is None:
            result_type = activity_defn.return_type
    if schedule_to_close_timeout is None and start_to_close_timeout is None:
        raise ValueError(
            f"Local activity {activity_type!r} needs schedule_to_close_timeout or start_to_close_timeout"
        )
    timedelta_to_ms(start_to_close_timeout, "start_to_close_timeout")
    timedelta_to_ms(schedule_to_close_timeout, "schedule_to_close_timeout")

    def schedule(headers: Mapping[str, Any] | None = None) -> Awaitable[Any]:
        return instance.local_activities.execute(
            activity_type,
            instance.converter.to_payloads(args),
            activity_id=activity_id,
            start_to_close_timeout=start_to_close_timeout,
            schedule_to_close_timeout=schedule_to_close_timeout,
            retry_policy=retry_policy,
            result_type=result_type,
            header=plain_headers(headers) if headers else None,
        )

    outbound = instance._outbound
    if outbound is None:
        return await schedule()  # type: ignore[no-any-return]
    intercepted = StartLocalActivityInput(activity_type, args, activity_id, {})
    intercepted.schedule = lambda: schedule(intercepted.headers)
    return await outbound.start_local_activity(intercepted)  # type: ignore[no-any-return]
