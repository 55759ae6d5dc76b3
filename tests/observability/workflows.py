"""Workflows that make every workflow_* counter move: success, failure, timeout, cancel, terminate,
continue-as-new, plus an activity that fails once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cadenza import activity, workflow
from cadenza.exceptions import ApplicationError

T = timedelta(seconds=10)


@activity.defn
async def hello(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn
async def flaky(name: str) -> str:
    if activity.info().attempt == 1:
        raise ApplicationError("first attempt fails")
    return name


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(hello, name, start_to_close_timeout=T)


@workflow.defn
class Flaky:
    @workflow.run
    async def run(self, name: str) -> str:
        from cadenza.common import RetryPolicy

        return await workflow.execute_activity(
            flaky,
            name,
            start_to_close_timeout=T,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
        )


@workflow.defn
class Failing:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("refused", non_retryable=True)


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@workflow.defn
class ContinueOnce:
    @workflow.run
    async def run(self, again: bool) -> str:
        if again:
            workflow.continue_as_new(False)
        return "done"


WORKFLOWS = [Hello, Flaky, Failing, Sleeper, ContinueOnce]
ACTIVITIES = [hello, flaky]


async def run_all(client: object, task_queue: str) -> None:
    """Runs one of each outcome through ``client`` (a worker must serve ``task_queue``)."""
    from cadenza.client import Client
    from cadenza.exceptions import WorkflowFailureError

    assert isinstance(client, Client)
    q = task_queue
    assert await client.execute_workflow(Hello.run, "x", id="m-hello", task_queue=q) == "Hello, x!"
    assert await client.execute_workflow(Flaky.run, "y", id="m-flaky", task_queue=q) == "y"
    assert await client.execute_workflow(ContinueOnce.run, True, id="m-can", task_queue=q) == "done"
    try:
        await client.execute_workflow(Failing.run, id="m-fail", task_queue=q)
    except WorkflowFailureError:
        pass
    else:
        raise AssertionError("Failing did not fail")
    timed = await client.start_workflow(
        Sleeper.run, 60.0, id="m-timeout", task_queue=q, execution_timeout=timedelta(seconds=1)
    )
    cancelled = await client.start_workflow(Sleeper.run, 60.0, id="m-cancel", task_queue=q)
    terminated = await client.start_workflow(Sleeper.run, 60.0, id="m-terminate", task_queue=q)
    await asyncio.sleep(0.3)
    await cancelled.cancel()
    await terminated.terminate("enough")
    for handle in (timed, cancelled, terminated):
        try:
            await handle.result()
        except WorkflowFailureError:
            pass


async def make_refusals(client: object, task_queue: str) -> None:
    """Three requests the server refuses: already started, unknown namespace, invalid argument."""
    from cadenza.client import Client
    from cadenza.exceptions import WorkflowAlreadyStartedError

    assert isinstance(client, Client)
    await client.start_workflow(Sleeper.run, 0.1, id="m-dup", task_queue=task_queue)
    try:
        await client.start_workflow(Sleeper.run, 0.1, id="m-dup", task_queue=task_queue)
    except WorkflowAlreadyStartedError:
        pass
    for call in (
        Client(client.service, namespace="no-such-namespace").start_workflow(
            Hello.run, "x", id="m-nons", task_queue=task_queue
        ),
        client.start_workflow(
            Hello.run, "x", id="m-badattr", task_queue=task_queue, search_attributes={"NoSuchField": ["x"]}
        ),
    ):
        try:
            await call
        except Exception:
            pass
        else:
            raise AssertionError("the server accepted a request it should refuse")
