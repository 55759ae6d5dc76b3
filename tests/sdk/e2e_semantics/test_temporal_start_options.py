"""temporalio's start options and per-call options, run over gRPC (a real frontend on a local port)
and in process: ``id_conflict_policy``, ``start_delay``, ``rpc_metadata``, ``rpc_timeout``,
``request_eager_start``, ``static_summary`` / ``static_details``, and what ``describe()`` shows."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
import grpc.aio
import pytest
from e2e.conftest import run_in_env
from rpc.conftest import run_in_grpc_env

from cadenza import workflow
from cadenza.client import Client, WorkflowHandle
from cadenza.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from cadenza.engine.rpc import server as rpc_server
from cadenza.exceptions import RPCError, WorkflowAlreadyStartedError
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

QUEUE = "start-options"
HOUR = timedelta(hours=1)

Scenario = Callable[[Any], Awaitable[Any]]


@workflow.defn
class Gate:
    """Waits for ``open`` (a signal), then returns when it started and the signals it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @workflow.run
    async def run(self, needed: int) -> dict[str, Any]:
        started = workflow.now().timestamp()
        await workflow.wait_condition(lambda: len(self.seen) >= needed)
        return {"started": started, "seen": self.seen}

    @workflow.signal
    def open(self, who: str) -> None:
        self.seen.append(who)

    @workflow.query
    def count(self) -> int:
        return len(self.seen)


@pytest.fixture(params=["grpc", "local"])
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Runs a scenario with the client on gRPC or in process."""
    return run_in_grpc_env if request.param == "grpc" else run_in_env


def _worker(env: Any) -> Worker:
    return Worker(env.client, task_queue=QUEUE, workflows=[Gate])


async def _events(handle: WorkflowHandle[Any]) -> list[Any]:
    return (await handle.fetch_history()).events


# -- id_conflict_policy ------------------------------------------------------------------------------


def test_use_existing_returns_the_running_run_and_starts_nothing(run: Callable[..., Any]) -> None:
    async def scenario(env: Any) -> None:
        client: Client = env.client
        first = await client.start_workflow(Gate.run, 1, id="conflict-use", task_queue=QUEUE)
        again = await client.start_workflow(
            Gate.run,
            1,
            id="conflict-use",
            task_queue=QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert again.first_run_id == first.first_run_id
        described = await again.describe()
        assert described.run_id == first.first_run_id and described.status == "RUNNING"
        # Nothing was written to the running run by the second start.
        assert [e.event_type for e in await _events(first)] == [
            EventType.WORKFLOW_EXECUTION_STARTED,
            EventType.WORKFLOW_TASK_SCHEDULED,
        ]

    run(scenario)


def test_terminate_existing_terminates_the_running_run_and_starts_a_new_one(run: Callable[..., Any]) -> None:
    async def scenario(env: Any) -> None:
        client: Client = env.client
        old = await client.start_workflow(Gate.run, 1, id="conflict-terminate", task_queue=QUEUE)
        new = await client.start_workflow(
            Gate.run,
            1,
            id="conflict-terminate",
            task_queue=QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
        )
        assert new.first_run_id and new.first_run_id != old.first_run_id
        old_pinned = client.get_workflow_handle("conflict-terminate", run_id=old.first_run_id)
        assert (await old_pinned.describe()).status == "TERMINATED"
        closing = (await _events(old_pinned))[-1]
        assert closing.event_type == EventType.WORKFLOW_EXECUTION_TERMINATED
        assert new.first_run_id in closing.attributes["reason"]
        current = await client.get_workflow_handle("conflict-terminate").describe()
        assert current.run_id == new.first_run_id and current.status == "RUNNING"
        async with _worker(env):
            await new.signal(Gate.open, "x")
            assert (await new.result())["seen"] == ["x"]

    run(scenario)


@pytest.mark.parametrize("policy", [WorkflowIDConflictPolicy.FAIL, WorkflowIDConflictPolicy.UNSPECIFIED])
def test_fail_and_unspecified_refuse_a_second_running_run(
    run: Callable[..., Any], policy: WorkflowIDConflictPolicy
) -> None:
    async def scenario(env: Any) -> None:
        client: Client = env.client
        first = await client.start_workflow(Gate.run, 1, id="conflict-fail", task_queue=QUEUE)
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                Gate.run, 1, id="conflict-fail", task_queue=QUEUE, id_conflict_policy=policy
            )
        assert (await client.get_workflow_handle("conflict-fail").describe()).run_id == first.first_run_id

    run(scenario)


def test_conflict_policy_leaves_closed_runs_to_the_reuse_policy(run: Callable[..., Any]) -> None:
    async def scenario(env: Any) -> None:
        client: Client = env.client
        first = await client.start_workflow(Gate.run, 1, id="conflict-closed", task_queue=QUEUE)
        await first.terminate("done with it")
        # USE_EXISTING only concerns a running run: a closed one is reused or refused by the reuse policy.
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                Gate.run,
                1,
                id="conflict-closed",
                task_queue=QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        second = await client.start_workflow(
            Gate.run,
            1,
            id="conflict-closed",
            task_queue=QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert second.first_run_id != first.first_run_id

    run(scenario)


def test_terminate_if_running_with_a_conflict_policy_is_refused_naming_both(run: Callable[..., Any]) -> None:
    async def scenario(env: Any) -> None:
        with pytest.raises(RPCError) as refused:
            await env.client.start_workflow(
                Gate.run,
                1,
                id="conflict-both",
                task_queue=QUEUE,
                id_reuse_policy=WorkflowIDReusePolicy.TERMINATE_IF_RUNNING,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        assert refused.value.status == "INVALID_ARGUMENT"
        assert "TERMINATE_IF_RUNNING" in str(refused.value) and "USE_EXISTING" in str(refused.value)

    run(scenario)


# -- start_delay --------------------------------------------------------------------------------------


def test_start_delay_holds_the_first_workflow_task_back(run: Callable[..., Any]) -> None:
    async def scenario(env: Any) -> None:
        client: Client = env.client
        async with _worker(env):
            handle = await client.start_workflow(
                Gate.run, 0, id="delayed", task_queue=QUEUE, start_delay=HOUR
            )
            started = (await _events(handle))[0]
            assert started.attributes["first_workflow_task_backoff_ms"] == 3_600_000
            described = await handle.describe()
            assert described.execution_time - described.start_time == 3_600 * 1_000_000
            assert described.execution_datetime is not None
            # Only the started event until the delay is over, worker or not.
            assert [e.event_type for e in await _events(handle)] == [EventType.WORKFLOW_EXECUTION_STARTED]
            result = await handle.result()  # time skips while a result is awaited
            assert result["started"] * 1e6 >= described.execution_time - 1_000

    run(scenario, time_skipping=True)


def test_a_signal_with_start_dispatches_a_delayed_run_at_once_a_signal_does_not(
    run: Callable[..., Any],
) -> None:
    async def scenario(env: Any) -> None:
        client: Client = env.client
        async with _worker(env):
            handle = await client.start_workflow(
                Gate.run, 2, id="delayed-signal", task_queue=QUEUE, start_delay=HOUR
            )
            await handle.signal(Gate.open, "plain")
            kinds = [e.event_type for e in await _events(handle)]
            assert EventType.WORKFLOW_TASK_SCHEDULED not in kinds  # a plain signal waits with the run
            again = await client.start_workflow(
                Gate.run,
                2,
                id="delayed-signal",
                task_queue=QUEUE,
                start_delay=HOUR,
                start_signal="open",
                start_signal_args=["with-start"],
            )
            assert again.first_run_id == handle.first_run_id
            result = await handle.result()
            assert result["seen"] == ["plain", "with-start"]
            described = await handle.describe()
            # The first task ran well before the hour was up.
            assert result["started"] * 1e6 < described.start_time + 3_600 * 1_000_000
            scheduled = next(
                e for e in await _events(handle) if e.event_type == EventType.WORKFLOW_TASK_SCHEDULED
            )
            assert scheduled.event_time < described.start_time + 3_600 * 1_000_000

    run(scenario, time_skipping=True)


def test_start_delay_with_cron_or_negative_is_refused(run: Callable[..., Any]) -> None:
    async def scenario(env: Any) -> None:
        with pytest.raises(RPCError) as refused:
            await env.client.start_workflow(
                Gate.run, 0, id="cron-delay", task_queue=QUEUE, start_delay=HOUR, cron_schedule="@hourly"
            )
        assert refused.value.status == "INVALID_ARGUMENT" and "cron_schedule" in str(refused.value)
        with pytest.raises(ValueError, match="start_delay"):
            await env.client.start_workflow(
                Gate.run, 0, id="negative-delay", task_queue=QUEUE, start_delay=timedelta(seconds=-1)
            )

    run(scenario)


# -- rpc_metadata and rpc_timeout ---------------------------------------------------------------------


class _Recorder(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.seen.append((details.method.rsplit("/", 1)[-1], dict(details.invocation_metadata or ())))
        return await continuation(details)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Recorder]:
    """Every call the test's gRPC server receives, with its metadata."""
    rec = _Recorder()
    real = grpc.aio.server

    def server(*args: Any, **kwargs: Any) -> Any:
        return real(*args, interceptors=[rec], **kwargs)

    monkeypatch.setattr(rpc_server.grpc.aio, "server", server)
    yield rec


def test_rpc_metadata_goes_out_with_every_call_it_is_given_to(recorder: _Recorder) -> None:
    meta = {"x-tenant": "blue", "x-trace-bin": b"\x00\x01"}

    async def scenario(env: Any) -> None:
        client: Client = env.client
        handle = await client.start_workflow(Gate.run, 1, id="meta", task_queue=QUEUE, rpc_metadata=meta)
        await handle.signal(Gate.open, "m", rpc_metadata=meta)
        await handle.describe(rpc_metadata=meta)
        await handle.fetch_history(rpc_metadata=meta)
        await client.count_workflows(rpc_metadata=meta)
        await handle.terminate(reason="done", rpc_metadata=meta)
        await handle.describe()  # without: nothing extra

    run_in_grpc_env(scenario)
    tagged = {method for method, md in recorder.seen if md.get("x-tenant") == "blue"}
    assert tagged == {
        "StartWorkflowExecution",
        "SignalWorkflowExecution",
        "DescribeWorkflowExecution",
        "GetWorkflowExecutionHistory",
        "CountWorkflowExecutions",
        "TerminateWorkflowExecution",
    }
    assert all(md.get("x-trace-bin") == b"\x00\x01" for _, md in recorder.seen if "x-tenant" in md)
    assert "x-tenant" not in recorder.seen[-1][1]


def test_rpc_metadata_in_process_is_checked_and_accepted() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        handle = await env.client.start_workflow(
            Gate.run, 1, id="meta-local", task_queue=QUEUE, rpc_metadata={"x-tenant": "blue"}
        )
        assert (await handle.describe(rpc_metadata={"x-tenant": "blue"})).status == "RUNNING"

    run_in_env(scenario)


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ({"X-Upper": "v"}, "not a gRPC metadata key"),
        ({"x-bin": "text"}, "must be bytes"),
        ({"x-text": b"bytes"}, "printable ASCII"),
        ({"grpc-timeout": "1S"}, "reserved"),
    ],
)
def test_bad_rpc_options_raise_before_anything_is_sent(
    run: Callable[..., Any], metadata: dict[str, Any], needle: str
) -> None:
    async def scenario(env: Any) -> None:
        with pytest.raises(ValueError, match=needle):
            await env.client.start_workflow(
                Gate.run, 1, id="bad-options", task_queue=QUEUE, rpc_metadata=metadata
            )
        with pytest.raises(ValueError, match="rpc_timeout must be positive"):
            await env.client.start_workflow(
                Gate.run, 1, id="bad-options", task_queue=QUEUE, rpc_timeout=timedelta(0)
            )
        with pytest.raises(Exception) as gone:
            await env.client.get_workflow_handle("bad-options").describe()
        assert "not found" in str(gone.value)

    run(scenario)


def test_rpc_timeout_is_the_deadline_of_a_call(run: Callable[..., Any]) -> None:
    async def scenario(env: Any) -> None:
        client: Client = env.client
        handle = await client.start_workflow(
            Gate.run, 1, id="deadline", task_queue=QUEUE, rpc_timeout=timedelta(seconds=5)
        )
        # No worker answers the query: the server would wait for one; the deadline ends the call.
        with pytest.raises(RPCError) as late:
            await handle.query(Gate.count, rpc_timeout=timedelta(milliseconds=200))
        assert late.value.status == "DEADLINE_EXCEEDED"
        # A result wait polls within the deadline rather than running into it.
        async with _worker(env):
            await handle.signal(Gate.open, "d", rpc_timeout=timedelta(seconds=5))
            result = await handle.result(rpc_timeout=timedelta(milliseconds=500))
            assert result["seen"] == ["d"]
            # execute_workflow: the deadline bounds the start; the result is waited for after it.
            executed = await client.execute_workflow(
                Gate.run, 0, id="deadline-execute", task_queue=QUEUE, rpc_timeout=timedelta(seconds=5)
            )
            assert executed["seen"] == []

    run(scenario)


def test_execute_workflow_takes_the_start_options(run: Callable[..., Any]) -> None:
    async def scenario(env: Any) -> None:
        client: Client = env.client
        async with _worker(env):
            result = await client.execute_workflow(
                Gate.run,
                0,
                id="execute-options",
                task_queue=QUEUE,
                execution_timeout=timedelta(hours=2),
                run_timeout=timedelta(hours=1),
                task_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=2),
                memo={"k": "v"},
                search_attributes={"CustomKeywordField": "kw"},
                static_summary="a summary",
                static_details="some details",
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                request_eager_start=True,
                rpc_metadata={"x-tenant": "blue"},
                rpc_timeout=timedelta(seconds=5),
            )
            assert result["seen"] == []
            described = await client.get_workflow_handle("execute-options").describe()
            assert described.memo == {"k": "v"} and described.status == "COMPLETED"
            assert described.execution_time == described.start_time
            assert described.parent_id is None
            assert await described.static_summary() is None and await described.memo_value("k") == "v"

    run(scenario)


# -- temporalio's names -------------------------------------------------------------------------------

# Keyword names of temporalio's calls (temporalio 1.x), written out here: temporalio is not a
# dependency. ``arg`` is left out: temporalio users pass it positionally, as ours are.
TEMPORALIO_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Client.start_workflow": (
        "args", "id", "task_queue", "result_type", "execution_timeout", "run_timeout",
        "task_timeout", "id_reuse_policy", "id_conflict_policy", "retry_policy", "cron_schedule",
        "memo", "search_attributes", "static_summary", "static_details", "start_delay",
        "start_signal", "start_signal_args", "rpc_metadata", "rpc_timeout", "request_eager_start",
    ),
    "WorkflowHandle.result": ("follow_runs", "rpc_metadata", "rpc_timeout"),
    "WorkflowHandle.signal": ("args", "rpc_metadata", "rpc_timeout"),
    "WorkflowHandle.query": ("args", "result_type", "reject_condition", "rpc_metadata", "rpc_timeout"),
    "WorkflowHandle.cancel": ("rpc_metadata", "rpc_timeout"),
    "WorkflowHandle.terminate": ("reason", "rpc_metadata", "rpc_timeout"),
    "WorkflowHandle.describe": ("rpc_metadata", "rpc_timeout"),
    "WorkflowHandle.fetch_history": ("rpc_metadata", "rpc_timeout"),
    "WorkflowHandle.execute_update": ("args", "id", "result_type", "rpc_metadata", "rpc_timeout"),
    "WorkflowHandle.start_update": (
        "args", "wait_for_stage", "id", "result_type", "rpc_metadata", "rpc_timeout",
    ),
    "Client.list_workflows": ("limit", "page_size", "next_page_token", "rpc_metadata", "rpc_timeout"),
    "Client.count_workflows": ("rpc_metadata", "rpc_timeout"),
    "Client.execute_update_with_start_workflow": (
        "args", "start_workflow_operation", "id", "result_type", "rpc_metadata", "rpc_timeout",
    ),
    "AsyncActivityHandle.heartbeat": ("rpc_metadata", "rpc_timeout"),
    "AsyncActivityHandle.complete": ("rpc_metadata", "rpc_timeout"),
    "AsyncActivityHandle.fail": ("last_heartbeat_details", "rpc_metadata", "rpc_timeout"),
    "AsyncActivityHandle.report_cancellation": ("rpc_metadata", "rpc_timeout"),
}  # fmt: skip


def test_the_calls_accept_temporalios_keyword_names() -> None:
    from cadenza.client import AsyncActivityHandle

    owners = {"Client": Client, "WorkflowHandle": WorkflowHandle, "AsyncActivityHandle": AsyncActivityHandle}
    missing = []
    for qualified, names in TEMPORALIO_KEYWORDS.items():
        owner, method = qualified.split(".")
        params = inspect.signature(getattr(owners[owner], method)).parameters
        missing += [f"{qualified}({n}=)" for n in names if n not in params]
    assert not missing, f"not accepted: {', '.join(missing)}"
    # execute_workflow passes its options on to start_workflow's: each one must be known there.
    assert "kwargs" in inspect.signature(Client.execute_workflow).parameters
    # The enums carry temporalio's member names, importable where temporalio users find them.
    assert [p.name for p in WorkflowIDConflictPolicy] == [
        "UNSPECIFIED", "FAIL", "USE_EXISTING", "TERMINATE_EXISTING",
    ]  # fmt: skip
    assert {p.name for p in WorkflowIDReusePolicy} >= {
        "ALLOW_DUPLICATE", "ALLOW_DUPLICATE_FAILED_ONLY", "REJECT_DUPLICATE", "TERMINATE_IF_RUNNING",
    }  # fmt: skip
    from cadenza.client import WorkflowIDConflictPolicy as from_client

    assert from_client is WorkflowIDConflictPolicy
