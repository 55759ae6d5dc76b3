"""Errors raised by the Cadenza SDK.

Everything derives from :class:`CadenzaError`. Errors that travel between workers, the engine and
clients as *failures* (the failure dict of ``cadenza.schemas.events``) derive from
:class:`FailureError`; raising one of them from workflow code fails the workflow, while any other
exception fails only the workflow task (it is retried once the code is fixed).

Conversion between these exceptions and failure dicts lives in :mod:`cadenza.sdk.converter`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

__all__ = [
    "ActivityError",
    "ApplicationError",
    "ApplicationErrorCategory",
    "CadenzaError",
    "CanceledError",
    "CancelledError",
    "ChildWorkflowError",
    "Failure",
    "FailureError",
    "NamespaceNotFoundError",
    "NondeterminismError",
    "PayloadDecodeError",
    "PayloadEncodeError",
    "QueryFailedError",
    "QueryRejectedError",
    "RPCError",
    "RetryState",
    "ServerError",
    "SessionFailedError",
    "TemporalError",
    "TerminatedError",
    "TimeoutError",
    "TimeoutType",
    "WorkflowAlreadyStartedError",
    "WorkflowFailureError",
    "WorkflowNotFoundError",
    "WorkflowQueryFailedError",
    "WorkflowTaskError",
    "WorkflowUpdateFailedError",
    "WorkflowUpdateRPCTimeoutOrCancelledError",
]


class CadenzaError(Exception):
    """Root of every error the SDK raises on purpose."""


TemporalError = CadenzaError
"""temporalio's name for the root error."""


class _Info:
    """Attribute view of some fields of a failure dict (``application_failure_info`` and kin)."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__!r})"


class Failure(dict[str, Any]):
    """A failure dict (``cadenza.schemas.events``) that also reads as temporalio's failure message:
    ``failure.message``, ``failure.stack_trace``, ``failure.cause`` (a ``Failure`` or None) and the
    ``*_failure_info`` of its kind (None for the other kinds). Dict access keeps working."""

    @property
    def message(self) -> str:
        return str(self.get("message") or "")

    @property
    def stack_trace(self) -> str:
        return str(self.get("stack_trace") or "")

    @property
    def source(self) -> str:
        return str(self.get("source") or "")

    @property
    def cause(self) -> Failure | None:
        cause = self.get("cause")
        return Failure(cause) if cause else None

    def _info(self, kind: str, **fields: Any) -> _Info | None:
        return _Info(**fields) if (self.get("failure_type") or "ApplicationFailure") == kind else None

    @property
    def application_failure_info(self) -> _Info | None:
        return self._info(
            "ApplicationFailure",
            type=self.get("application_type") or "",
            non_retryable=bool(self.get("non_retryable")),
            details=self.get("details"),
        )

    @property
    def timeout_failure_info(self) -> _Info | None:
        return self._info(
            "TimeoutFailure",
            timeout_type=self.get("timeout_type"),
            last_heartbeat_details=self.get("details"),
        )

    @property
    def canceled_failure_info(self) -> _Info | None:
        return self._info("CanceledFailure", details=self.get("details"))

    @property
    def terminated_failure_info(self) -> _Info | None:
        return self._info("TerminatedFailure")

    @property
    def server_failure_info(self) -> _Info | None:
        return self._info("ServerFailure", non_retryable=bool(self.get("non_retryable")))

    @property
    def activity_failure_info(self) -> _Info | None:
        return self._info("ActivityFailure", details=self.get("details"))

    @property
    def child_workflow_execution_failure_info(self) -> _Info | None:
        return self._info("ChildWorkflowExecutionFailure", details=self.get("details"))


class FailureError(CadenzaError):
    """Root of the errors that travel as failures.

    Raising one of these from a workflow's run method fails the workflow; raising one from an
    activity fails the activity attempt.
    """

    def __init__(self, message: str, *, failure: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self._message = message
        self._failure = failure if failure is None or isinstance(failure, Failure) else Failure(failure)

    @property
    def message(self) -> str:
        """The human-readable message."""
        return self._message

    @property
    def failure(self) -> Failure | None:
        """The failure this error was decoded from, if it came from one: a dict (the failure dict)
        whose fields also read as attributes (``failure.message``, ``failure.cause``,
        ``failure.application_failure_info.type``, ...)."""
        return self._failure


class ApplicationErrorCategory(enum.IntEnum):
    """How an application error is reported (temporalio's values)."""

    UNSPECIFIED = 0
    """Logged as a failure (a warning with its traceback)."""
    BENIGN = 1
    """An expected failure: the worker logs it at DEBUG instead."""


class ApplicationError(FailureError):
    """An error raised by user code, with an application-defined ``type`` and optional details."""

    def __init__(
        self,
        message: str,
        *details: Any,
        type: str | None = None,
        non_retryable: bool = False,
        next_retry_delay: timedelta | None = None,
        category: ApplicationErrorCategory = ApplicationErrorCategory.UNSPECIFIED,
        failure: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, failure=failure)
        self._details = tuple(details)
        self._type = type
        self._non_retryable = non_retryable
        self._next_retry_delay = next_retry_delay
        self._category = ApplicationErrorCategory(category)

    @property
    def category(self) -> ApplicationErrorCategory:
        """How the error is reported (a BENIGN activity failure is logged at DEBUG by its worker);
        it travels in the failure (``category``), so it reads the same on the other side."""
        return self._category

    @property
    def details(self) -> Sequence[Any]:
        """User values attached to the error; they travel as payloads."""
        return self._details

    @property
    def type(self) -> str | None:
        """Application error type, matched against a retry policy's ``non_retryable_error_types``."""
        return self._type

    @property
    def non_retryable(self) -> bool:
        """True to stop retrying regardless of the retry policy."""
        return self._non_retryable

    @property
    def next_retry_delay(self) -> timedelta | None:
        """Requested delay before the next retry.

        Raised by an activity, it replaces the retry policy's backoff before the next attempt (the
        server honours it; the policy's maximum attempts and the schedule-to-close timeout still
        apply). It travels in the failure (``next_retry_delay_ms``), so the workflow sees it too.
        """
        return self._next_retry_delay


class CanceledError(FailureError):
    """The operation (activity, child workflow, workflow) was cancelled."""

    def __init__(
        self, message: str = "canceled", *details: Any, failure: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, failure=failure)
        self._details = tuple(details)

    @property
    def details(self) -> Sequence[Any]:
        """Values attached to the cancellation."""
        return self._details


CancelledError = CanceledError
"""temporalio's spelling of :class:`CanceledError` (not ``asyncio.CancelledError``)."""


class TerminatedError(FailureError):
    """The workflow was terminated by an operator or a client."""

    def __init__(
        self, message: str = "terminated", *details: Any, failure: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, failure=failure)
        self._details = tuple(details)

    @property
    def details(self) -> Sequence[Any]:
        """Values given with the termination."""
        return self._details


class TimeoutType(enum.StrEnum):
    """Which timeout fired. The values are the strings stored in a failure's ``timeout_type``."""

    START_TO_CLOSE = "START_TO_CLOSE"
    SCHEDULE_TO_START = "SCHEDULE_TO_START"
    SCHEDULE_TO_CLOSE = "SCHEDULE_TO_CLOSE"
    HEARTBEAT = "HEARTBEAT"


class TimeoutError(FailureError):
    """An activity, child workflow or workflow timed out.

    Named like the builtin on purpose (as temporalio does); import it qualified when both are in use.
    """

    def __init__(
        self,
        message: str,
        *,
        type: TimeoutType | None,
        last_heartbeat_details: Sequence[Any] = (),
        failure: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, failure=failure)
        self._type = type
        self._last_heartbeat_details = tuple(last_heartbeat_details)

    @property
    def type(self) -> TimeoutType | None:
        """The timeout that fired."""
        return self._type

    @property
    def last_heartbeat_details(self) -> Sequence[Any]:
        """Details of the last heartbeat before a heartbeat timeout."""
        return self._last_heartbeat_details


class ServerError(FailureError):
    """A failure produced by the engine itself rather than by user code."""

    def __init__(
        self, message: str, *, non_retryable: bool = False, failure: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, failure=failure)
        self._non_retryable = non_retryable

    @property
    def non_retryable(self) -> bool:
        """True when retrying cannot help."""
        return self._non_retryable


class RetryState(enum.StrEnum):
    """Why retrying stopped; the values are the strings stored in events' ``retry_state``."""

    IN_PROGRESS = "IN_PROGRESS"
    NON_RETRYABLE_FAILURE = "NON_RETRYABLE_FAILURE"
    TIMEOUT = "TIMEOUT"
    MAXIMUM_ATTEMPTS_REACHED = "MAXIMUM_ATTEMPTS_REACHED"
    RETRY_POLICY_NOT_SET = "RETRY_POLICY_NOT_SET"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"


class ActivityError(FailureError):
    """An activity failed; ``cause`` says how (ApplicationError, TimeoutError, CanceledError, ...)."""

    def __init__(
        self,
        message: str,
        *,
        activity_type: str,
        activity_id: str,
        scheduled_event_id: int,
        started_event_id: int,
        retry_state: str | None,
        cause: BaseException | None,
        failure: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, failure=failure)
        self._activity_type = activity_type
        self._activity_id = activity_id
        self._scheduled_event_id = scheduled_event_id
        self._started_event_id = started_event_id
        self._retry_state = retry_state
        self.__cause__ = cause

    @property
    def activity_type(self) -> str:
        """Registered name of the activity."""
        return self._activity_type

    @property
    def activity_id(self) -> str:
        """Id of the activity within its workflow run."""
        return self._activity_id

    @property
    def scheduled_event_id(self) -> int:
        """Event id of its ActivityTaskScheduled."""
        return self._scheduled_event_id

    @property
    def started_event_id(self) -> int:
        """Event id of its last ActivityTaskStarted (0 if it never started)."""
        return self._started_event_id

    @property
    def retry_state(self) -> str | None:
        """Why retrying stopped (a :class:`RetryState` value), if known."""
        return self._retry_state

    @property
    def cause(self) -> BaseException | None:
        """The underlying failure."""
        return self.__cause__


class ChildWorkflowError(FailureError):
    """A child workflow failed; ``cause`` says how."""

    def __init__(
        self,
        message: str,
        *,
        namespace: str,
        workflow_id: str,
        run_id: str,
        workflow_type: str,
        initiated_event_id: int,
        started_event_id: int,
        retry_state: str | None,
        cause: BaseException | None,
        failure: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, failure=failure)
        self._namespace = namespace
        self._workflow_id = workflow_id
        self._run_id = run_id
        self._workflow_type = workflow_type
        self._initiated_event_id = initiated_event_id
        self._started_event_id = started_event_id
        self._retry_state = retry_state
        self.__cause__ = cause

    @property
    def namespace(self) -> str:
        """Namespace of the child."""
        return self._namespace

    @property
    def workflow_id(self) -> str:
        """Workflow id of the child."""
        return self._workflow_id

    @property
    def run_id(self) -> str:
        """Run id of the child."""
        return self._run_id

    @property
    def workflow_type(self) -> str:
        """Workflow type of the child."""
        return self._workflow_type

    @property
    def initiated_event_id(self) -> int:
        """Event id of the parent's StartChildWorkflowExecutionInitiated."""
        return self._initiated_event_id

    @property
    def started_event_id(self) -> int:
        """Event id of the parent's ChildWorkflowExecutionStarted."""
        return self._started_event_id

    @property
    def retry_state(self) -> str | None:
        """Why retrying stopped, if known."""
        return self._retry_state

    @property
    def cause(self) -> BaseException | None:
        """The underlying failure."""
        return self.__cause__


class WorkflowAlreadyStartedError(FailureError):
    """A workflow with this id is already running (or the reuse policy forbids a new run)."""

    def __init__(self, workflow_id: str, run_id: str, workflow_type: str) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} of type {workflow_type!r} already started (run {run_id!r})"
        )
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.workflow_type = workflow_type


class WorkflowFailureError(CadenzaError):
    """What a client gets from ``handle.result()`` when the workflow failed, was cancelled,
    terminated or timed out; ``cause`` is the converted failure."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"Workflow execution failed: {cause}")
        self.__cause__ = cause

    @property
    def cause(self) -> BaseException:
        """The failure that closed the workflow."""
        assert self.__cause__ is not None
        return self.__cause__


class WorkflowUpdateFailedError(CadenzaError):
    """What a client gets when its workflow update was rejected by the validator or its handler
    failed; ``cause`` is the converted failure (temporalio's name and shape)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"Workflow update failed: {cause}")
        self.__cause__ = cause

    @property
    def cause(self) -> BaseException:
        assert self.__cause__ is not None
        return self.__cause__


class WorkflowUpdateRPCTimeoutOrCancelledError(CadenzaError):
    """The wait for a workflow update's outcome ran out (``rpc_timeout``) or was cancelled; the
    update itself may still complete (ask its ``WorkflowUpdateHandle`` again)."""

    def __init__(self) -> None:
        super().__init__("Timeout or cancellation waiting for update")


class WorkflowTaskError(CadenzaError):
    """Workflow code could not produce commands for a workflow task.

    The worker fails the workflow task (not the workflow); the engine retries it, so fixing and
    redeploying the code lets the workflow continue. ``cause`` is the exception from workflow code.
    """

    def __init__(self, cause: BaseException | None, message: str | None = None) -> None:
        super().__init__(message or f"Workflow task failed: {type(cause).__name__}: {cause}")
        self.__cause__ = cause

    @property
    def cause(self) -> BaseException | None:
        """The exception raised by workflow code, if any."""
        return self.__cause__


class NondeterminismError(WorkflowTaskError):
    """Replaying workflow code produced commands that differ from the recorded history."""

    def __init__(
        self,
        message: str,
        *,
        expected: str | None = None,
        recorded: str | None = None,
        event_id: int | None = None,
    ) -> None:
        super().__init__(None, message)
        self.expected = expected
        """The command the code produced now (None if it produced none)."""
        self.recorded = recorded
        """The command recorded in history (None if history has none)."""
        self.event_id = event_id
        """Event id of the recorded command event, or of the task where they diverged."""


class WorkflowNotFoundError(CadenzaError):
    """No workflow execution with this id (and run id)."""

    def __init__(self, workflow_id: str, run_id: str | None = None) -> None:
        run = f" run {run_id!r}" if run_id else ""
        super().__init__(f"Workflow {workflow_id!r}{run} not found")
        self.workflow_id = workflow_id
        self.run_id = run_id


class NamespaceNotFoundError(CadenzaError):
    """The namespace is not registered."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f"Namespace {namespace!r} not found")
        self.namespace = namespace


class QueryFailedError(CadenzaError):
    """A query handler raised, or no handler exists for the query name."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


WorkflowQueryFailedError = QueryFailedError
"""temporalio's name for :class:`QueryFailedError` (in ``cadenza.client``, where temporalio has it)."""


class QueryRejectedError(CadenzaError):
    """A query was not sent because the run's status met the query's reject condition."""

    def __init__(self, status: str) -> None:
        super().__init__(f"Query rejected: the workflow run is {status}")
        self.status = status
        """The run's status when the query was refused (``COMPLETED``, ``FAILED``, ...)."""


class SessionFailedError(FailureError):
    """A worker session could not be created, or failed while open (its worker stopped heartbeating
    or its execution timeout passed).

    Raised in workflow code by ``create_session`` / ``recreate_session`` and by activities started in
    a failed session; activities that were running in it fail with an :class:`ActivityError` whose
    cause is this error.
    """

    def __init__(self, message: str, *, session_id: str = "") -> None:
        super().__init__(message)
        self._session_id = session_id

    @property
    def session_id(self) -> str:
        """Id of the session within its workflow run."""
        return self._session_id


class PayloadEncodeError(CadenzaError, TypeError):
    """A value could not be converted to a payload; raised before anything is sent."""

    def __init__(self, message: str, *, index: int | None = None, value_type: type | None = None) -> None:
        super().__init__(message)
        self.index = index
        """Position of the offending argument, when encoding a list of arguments."""
        self.value_type = value_type
        """Type of the offending value."""


class PayloadDecodeError(CadenzaError, ValueError):
    """A payload could not be converted to a value of the expected type."""


class RPCError(CadenzaError):
    """The server refused a call; ``status`` is the gRPC-style code (``INVALID_ARGUMENT``,
    ``NOT_FOUND``, ``RESOURCE_EXHAUSTED``, ...) and the message names the problem."""

    def __init__(self, status: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.details = dict(details or {})

    @property
    def retry_after(self) -> float | None:
        """For RESOURCE_EXHAUSTED from one of the server's overload limits: the seconds until a
        retry can be admitted (the server's hint; the refusal changed nothing). None otherwise.
        The client has already retried the calls that are safe to repeat for up to ten seconds."""
        hint = self.details.get("retry_after_ms")
        if self.status != "RESOURCE_EXHAUSTED" or isinstance(hint, bool) or not isinstance(hint, int | float):
            return None
        return float(hint) / 1000.0
