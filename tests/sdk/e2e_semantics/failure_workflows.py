"""Workflows and activities for the timeout, failure and query tests, written as temporalio's own SDK
tests write them (only the imports differ)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import NoReturn

from cadenza import activity, workflow
from cadenza.common import RetryPolicy
from cadenza.exceptions import ApplicationError


class RetryDelay:
    error_message = "Deliberately failing with next_retry_delay set"
    next_retry_delay = timedelta(milliseconds=5)
    attempts: list[int] = []


@activity.defn
async def activity_with_retry_delay() -> None:
    RetryDelay.attempts.append(activity.info().attempt)
    raise ApplicationError(RetryDelay.error_message, next_retry_delay=RetryDelay.next_retry_delay)


# -- timeouts and failures -------------------------------------------------------------------------


@workflow.defn
class WaitConditionTimeoutWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False, timeout=0.5)


class MyFailure(Exception):
    pass


class WorkerLevelFailure(Exception):
    pass


@workflow.defn(failure_exception_types=[MyFailure])
class RaisesConfiguredFailureWorkflow:
    @workflow.run
    async def run(self, which: str) -> None:
        if which == "workflow-level":
            raise MyFailure("workflow-level failure type")
        if which == "worker-level":
            raise WorkerLevelFailure("worker-level failure type")
        raise KeyError("a bug")


@workflow.defn
class ActivitiesWithRetryDelayWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            activity_with_retry_delay,
            retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(minutes=5)),
            schedule_to_close_timeout=timedelta(minutes=10),
        )


# -- queries ---------------------------------------------------------------------------------------


@workflow.defn
class SignalAndQueryErrorsWorkflow:
    @workflow.run
    async def run(self) -> None:
        # Wait forever
        await asyncio.Future()

    @workflow.signal
    def bad_signal(self) -> NoReturn:
        raise ApplicationError("signal fail", 123)

    @workflow.query
    def bad_query(self) -> NoReturn:
        raise ApplicationError("query fail", 456)

    @workflow.query
    def other_query(self) -> str:
        raise NotImplementedError


# -- local activities ------------------------------------------------------------------------------


@workflow.defn
class MissingLocalActivityWorkflow:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_local_activity(
            "not_registered_yet", start_to_close_timeout=timedelta(seconds=5)
        )


@activity.defn(name="not_registered_yet")
async def not_registered_yet() -> str:
    return "registered now"
