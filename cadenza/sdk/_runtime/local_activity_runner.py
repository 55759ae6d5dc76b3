"""Running local activities inside the worker, with local retries, within a workflow task's budget.

A local activity runs while its workflow task is open, so all of its attempts must fit in that
task: the engine has no heartbeat for workflow tasks here, and a task that outlives its timeout is
given to another worker. The budget is 80% of the workflow task timeout from when the task was
received (the rest leaves time to report). Within it attempts are retried per the retry policy,
with the backoff slept by the worker; a retry whose backoff would end past the budget is not made
(the last failure stands, ``retry_state`` TIMEOUT), and an attempt still running when the budget
runs out is abandoned with a ``TimeoutError``. Either way the outcome is recorded, so the workflow
sees a deterministic failure it can handle, rather than a task retried forever. Work that needs
longer belongs in an ordinary activity.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cadenza.schemas.events import Command
from cadenza.sdk import activity as activity_mod
from cadenza.sdk._runtime.activity_tasks import run_intercepted
from cadenza.sdk._runtime.info import WorkflowInfo
from cadenza.sdk._runtime.local_activities import LocalActivityOutcome, LocalActivityRequest
from cadenza.sdk.activity import (
    DYNAMIC_ACTIVITY,
    ActivityContext,
    ActivityDefinition,
    ActivityInfo,
    dynamic_arguments,
)
from cadenza.sdk.common import RetryPolicy
from cadenza.sdk.converter import DataConverter
from cadenza.sdk.exceptions import (
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
    WorkflowTaskError,
)
from cadenza.sdk.interceptor import ActivityChain, Headers

if TYPE_CHECKING:
    from cadenza.sdk._runtime.instance import WorkflowInstance

__all__ = ["TASK_BUDGET_FRACTION", "LocalActivityRunner"]

TASK_BUDGET_FRACTION = 0.8
"""Share of the workflow task timeout local activities may use."""
_DEFAULT_TASK_TIMEOUT = timedelta(seconds=10)
_WaitForTimeout = asyncio.TimeoutError
"""What ``asyncio.wait_for`` raises (``TimeoutError`` in this module is the SDK's failure type)."""


class LocalActivityRunner:
    """Runs the local activity requests of workflow tasks on the worker's loop (or executor)."""

    def __init__(
        self,
        activities: Mapping[str, ActivityDefinition],
        converter: DataConverter,
        executor: Callable[[], concurrent.futures.Executor | None],
        chain: ActivityChain | None = None,
    ) -> None:
        self._activities = activities
        self._converter = converter
        self._executor = executor
        self._chain = chain
        """The worker's activity interceptors: local activities run through them too."""

    @staticmethod
    def task_deadline(info: WorkflowInfo, received: float) -> float:
        """Loop time by which every local activity of a task received at ``received`` must end."""
        timeout = info.task_timeout or _DEFAULT_TASK_TIMEOUT
        return received + timeout.total_seconds() * TASK_BUDGET_FRACTION

    async def complete_task(self, instance: WorkflowInstance, received: float) -> list[Command]:
        """Run the local activities ``instance``'s open task waits on, feed their outcomes back and
        resume the task until it produces its commands (the code may start more on the way)."""
        info = instance.info
        deadline = self.task_deadline(info, received)
        commands: list[Command] = []
        while instance.task_open:
            requests = instance.take_local_activities()
            if not requests:
                raise RuntimeError("the workflow task waits on local activities, but none is pending")
            for request in requests:
                if request.activity_type not in self._activities and DYNAMIC_ACTIVITY not in self._activities:
                    # As for a missing workflow type: fail the task, so deploying the activity
                    # resumes the run (rather than failing the workflow for good).
                    raise WorkflowTaskError(self._not_registered(request.activity_type))
            outcomes = await asyncio.gather(*(self.run(request, info, deadline) for request in requests))
            # Resolved in request order, so the code wakes in the same order on every worker.
            for request, outcome in zip(requests, outcomes, strict=True):
                instance.resolve_local_activity(request.seq, outcome)
            commands = instance.resume()
        return commands

    def _not_registered(self, activity_type: str) -> ApplicationError:
        known = ", ".join(sorted(n for n in self._activities if not n.startswith("__"))) or "none"
        return ApplicationError(
            f"local activity type {activity_type!r} is not registered on this worker (it has: {known})",
            type="ActivityTypeNotFound",
            non_retryable=True,
        )

    async def run(
        self, request: LocalActivityRequest, info: WorkflowInfo, task_deadline: float
    ) -> LocalActivityOutcome:
        """Run ``request`` to its outcome: a result, or the failure that stopped retrying."""
        converter = self._converter
        defn = self._activities.get(request.activity_type) or self._activities.get(DYNAMIC_ACTIVITY)
        if defn is None:
            error = self._not_registered(request.activity_type)
            return LocalActivityOutcome(
                failure=converter.exception_to_failure(error),
                retry_state=RetryState.NON_RETRYABLE_FAILURE.value,
            )
        try:
            args = (
                dynamic_arguments(converter, request.input)
                if defn.dynamic
                else converter.from_payloads(request.input, defn.param_types)
            )
        except Exception as err:
            error = ApplicationError(
                f"cannot decode the arguments of local activity {request.activity_type!r}: {err}",
                type="PayloadDecodeError",
                non_retryable=True,
            )
            return LocalActivityOutcome(
                failure=converter.exception_to_failure(error),
                retry_state=RetryState.NON_RETRYABLE_FAILURE.value,
            )
        loop = asyncio.get_running_loop()
        policy = request.retry_policy or RetryPolicy()
        scheduled = datetime.now(UTC)
        schedule_to_close = request.schedule_to_close_timeout
        overall = loop.time() + schedule_to_close.total_seconds() if schedule_to_close else math.inf
        deadline = min(overall, task_deadline)
        attempt = 0
        while True:
            attempt += 1
            per_attempt = request.start_to_close_timeout
            attempt_end = loop.time() + per_attempt.total_seconds() if per_attempt else math.inf
            limit = min(attempt_end, deadline)
            ctx = ActivityContext(
                info=self._info(request, info, attempt, scheduled),
                heartbeat=_ignore,
                converter=self._converter,
            )
            try:
                value = await asyncio.wait_for(
                    self._call(defn, args, ctx, request.header), max(0.0, limit - loop.time())
                )
            except _WaitForTimeout:
                # The attempt is abandoned; a sync one keeps its thread until it notices is_cancelled().
                ctx.cancelled.set()
                failure_exc: BaseException = self._timeout(request, limit, attempt_end, overall, info)
            except asyncio.CancelledError:
                ctx.cancelled.set()
                raise
            except Exception as err:
                failure_exc = err
            else:
                try:
                    return LocalActivityOutcome(result=converter.to_payloads([value]), attempt=attempt)
                except Exception as err:
                    failure_exc = ApplicationError(
                        f"local activity {request.activity_type!r} returned a value that cannot be "
                        f"encoded: {err}",
                        type="PayloadEncodeError",
                        non_retryable=True,
                    )
            failure = converter.exception_to_failure(failure_exc)
            stop = self._why_stop(failure_exc, failure, policy, attempt, limit, attempt_end)
            if stop is None:
                delay = _backoff(policy, attempt, failure_exc)
                if loop.time() + delay < deadline:
                    await asyncio.sleep(delay)
                    continue
                stop = RetryState.TIMEOUT
            return LocalActivityOutcome(failure=failure, attempt=attempt, retry_state=stop.value)

    async def _call(
        self, defn: ActivityDefinition, args: list[Any], ctx: ActivityContext, headers: Headers
    ) -> Any:
        if self._chain is not None:
            return await run_intercepted(
                self._chain, headers, defn.fn, defn.is_async, args, ctx, self._executor()
            )
        if defn.is_async:
            with activity_mod._activity_context(ctx):
                return await defn.fn(*args)

        def call() -> Any:
            activity_mod._set_context(ctx)
            return defn.fn(*args)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), contextvars.copy_context().run, call)

    def _timeout(
        self,
        request: LocalActivityRequest,
        limit: float,
        attempt_end: float,
        overall: float,
        info: WorkflowInfo,
    ) -> TimeoutError:
        if limit == attempt_end:
            return TimeoutError(
                f"local activity {request.activity_type!r} attempt exceeded its start_to_close_timeout",
                type=TimeoutType.START_TO_CLOSE,
            )
        if limit == overall:
            return TimeoutError(
                f"local activity {request.activity_type!r} exceeded its schedule_to_close_timeout",
                type=TimeoutType.SCHEDULE_TO_CLOSE,
            )
        timeout = info.task_timeout or _DEFAULT_TASK_TIMEOUT
        return TimeoutError(
            f"local activity {request.activity_type!r} did not finish within its workflow task's "
            f"budget ({TASK_BUDGET_FRACTION:.0%} of the {timeout.total_seconds():g} s workflow task "
            "timeout); run long work as an ordinary activity",
            type=TimeoutType.SCHEDULE_TO_CLOSE,
        )

    @staticmethod
    def _why_stop(
        error: BaseException,
        failure: dict[str, Any],
        policy: RetryPolicy,
        attempt: int,
        limit: float,
        attempt_end: float,
    ) -> RetryState | None:
        if isinstance(error, TimeoutError) and limit != attempt_end:
            return RetryState.TIMEOUT
        if failure.get("non_retryable") or (
            failure.get("application_type") in policy.non_retryable_error_types
        ):
            return RetryState.NON_RETRYABLE_FAILURE
        if policy.maximum_attempts and attempt >= policy.maximum_attempts:
            return RetryState.MAXIMUM_ATTEMPTS_REACHED
        return None

    @staticmethod
    def _info(
        request: LocalActivityRequest, info: WorkflowInfo, attempt: int, scheduled: datetime
    ) -> ActivityInfo:
        return ActivityInfo(
            activity_id=request.activity_id,
            activity_type=request.activity_type,
            attempt=attempt,
            task_queue=info.task_queue,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            workflow_type=info.workflow_type,
            namespace=info.namespace,
            heartbeat_details=[],
            heartbeat_timeout=None,
            scheduled_time=scheduled,
            started_time=datetime.now(UTC),
            task_token=b"",
            schedule_to_close_timeout=request.schedule_to_close_timeout,
            start_to_close_timeout=request.start_to_close_timeout,
            is_local=True,
        )


def _ignore(details: Any) -> None:
    """Heartbeats of local activities have nowhere to go: the workflow task is their liveness."""


def _backoff(policy: RetryPolicy, attempt: int, error: BaseException) -> float:
    if isinstance(error, ApplicationError) and error.next_retry_delay is not None:
        return error.next_retry_delay.total_seconds()
    delay = policy.initial_interval.total_seconds() * policy.backoff_coefficient ** (attempt - 1)
    return min(delay, policy.effective_maximum_interval.total_seconds())
