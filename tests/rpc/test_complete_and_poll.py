"""A workflow task's completion also fetches the worker's next workflow task and brings back the
activities it scheduled that the worker runs itself (``RespondWorkflowTaskCompletedEager``); the
client falls back to ``RespondWorkflowTaskCompletedAndPoll`` and to the plain completion where a
server lacks those or they do not apply."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from e2e.workflows import HelloWorkflow, say_hello

from cadenza.engine.errors import ServiceError
from cadenza.engine.rpc import server as rpc_server
from cadenza.engine.rpc.handlers import Handler, Handlers
from cadenza.schemas.service import RespondWorkflowTaskCompletedRequest, StartWorkflowRequest
from cadenza.sdk._grpc import GrpcService
from cadenza.worker import Worker

from .conftest import run_in_grpc_env


def count_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the calls the server receives, by method (patched before the server is built)."""
    calls: Counter[str] = Counter()
    wrap = rpc_server._wrap

    def counted(method: str, handler: Handler) -> grpc.RpcMethodHandler:
        async def call(r: dict[str, Any]) -> dict[str, Any]:
            calls[method] += 1
            return await handler(r)

        return wrap(method, call)

    monkeypatch.setattr(rpc_server, "_wrap", counted)
    return calls


def hellos(n: int, **worker_options: Any) -> Callable[[Any], Awaitable[None]]:
    """A scenario: one worker with one workflow poller runs ``n`` hello worlds, one after another.
    Without a workflow cache (so without sticky execution, whose completions and sticky queue
    polls ``tests/e2e/test_sticky.py`` covers), unless asked."""
    worker_options.setdefault("max_cached_workflows", 0)

    async def scenario(env: Any) -> None:
        async with Worker(
            env.client,
            task_queue="q",
            workflows=[HelloWorkflow],
            activities=[say_hello],
            workflow_pollers=1,
            **worker_options,
        ):
            for i in range(n):
                result = await env.client.execute_workflow(
                    HelloWorkflow.run, f"n{i}", id=f"g{i}", task_queue="q"
                )
                assert result == f"Hello, n{i}!"

    return scenario


def workflow_task_calls(calls: Counter[str]) -> Counter[str]:
    methods = (
        "PollWorkflowTaskQueue",
        "RespondWorkflowTaskCompleted",
        "RespondWorkflowTaskCompletedAndPoll",
        "RespondWorkflowTaskCompletedEager",
    )
    return Counter({m: n for m, n in calls.items() if m in methods})


def test_each_completion_fetches_the_next_workflow_task_and_its_activities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_calls(monkeypatch)
    run_in_grpc_env(hellos(3, activity_pollers=1))
    # Two workflow tasks per run. A completion that brought back an activity does not wait for the
    # next workflow task (the activity must run first), so the poller then polls plainly for each
    # run's second task; each later run's first task came with the completion before it, and only
    # the worker's very first task from a plain poll.
    assert workflow_task_calls(calls) == Counter(
        {"RespondWorkflowTaskCompletedEager": 6, "PollWorkflowTaskQueue": 1 + 3}
    )
    # Every activity came back with the completion that scheduled it: the activity poller's first
    # poll never brought a task, so it never polled again.
    assert calls["PollActivityTaskQueue"] == 1
    assert calls["RespondActivityTaskCompleted"] == 3


class _NotServed(ServiceError):
    code = "UNIMPLEMENTED"


async def _unimplemented(self: Handlers, r: dict[str, Any]) -> dict[str, Any]:
    raise _NotServed("unknown method")


def test_a_server_without_eager_dispatch_gets_completions_that_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_calls(monkeypatch)
    monkeypatch.setattr(Handlers, "RespondWorkflowTaskCompletedEager", _unimplemented)

    run_in_grpc_env(hellos(3))
    # Tried once; that completion and every later one fetch the next task the older way.
    assert workflow_task_calls(calls) == Counter(
        {
            "RespondWorkflowTaskCompletedEager": 1,
            "RespondWorkflowTaskCompletedAndPoll": 6,
            "PollWorkflowTaskQueue": 1,
        }
    )


def test_a_server_without_the_methods_gets_plain_completions(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_calls(monkeypatch)
    monkeypatch.setattr(Handlers, "RespondWorkflowTaskCompletedEager", _unimplemented)
    monkeypatch.setattr(Handlers, "RespondWorkflowTaskCompletedAndPoll", _unimplemented)

    run_in_grpc_env(hellos(2))
    # Tried once, then every task is polled and completed the plain way. The poller's last plain
    # poll may or may not have reached the server when the worker stops: 4 polls brought tasks.
    polls = calls["PollWorkflowTaskQueue"]
    assert 4 <= polls <= 5
    assert workflow_task_calls(calls) == Counter(
        {
            "RespondWorkflowTaskCompletedEager": 1,
            "RespondWorkflowTaskCompletedAndPoll": 1,
            "RespondWorkflowTaskCompleted": 4,
            "PollWorkflowTaskQueue": polls,
        }
    )


def test_a_task_completed_by_another_coroutine_than_its_poller_is_completed_plainly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_calls(monkeypatch)

    async def scenario(env: Any) -> None:
        service = env.client.service
        assert isinstance(service, GrpcService)
        await service.start_workflow_execution(
            StartWorkflowRequest(
                namespace="default", workflow_id="w", workflow_type="HelloWorkflow", task_queue="q"
            )
        )
        task = await service.poll_workflow_task_queue("default", "q", identity="test", timeout_s=5)
        assert task is not None
        request = RespondWorkflowTaskCompletedRequest(task.task_token, [], identity="test")
        # Handed to another coroutine, as a worker running tasks apart from its pollers does: a task
        # fetched with this completion would wait for a poller that is busy elsewhere.
        await asyncio.create_task(service.respond_workflow_task_completed(request))

    run_in_grpc_env(scenario)
    assert workflow_task_calls(calls) == Counter(
        {"PollWorkflowTaskQueue": 1, "RespondWorkflowTaskCompleted": 1}
    )
