"""Worker sessions: activities pinned to one worker, a limit per worker, failure when it dies."""

from __future__ import annotations

from e2e.conftest import run_in_env

from cadenza.engine.matching import ACTIVITY_TASK
from cadenza.schemas.events import EventType
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .waits import activity_started, eventually, has_event
from .workflows import (
    FileProcessing,
    SessionHolder,
    SessionSurvivor,
    download,
    process,
    slow_process,
    where,
)

QUEUE = "files"
ACTIVITIES = [download, process, slow_process, where]
WORKFLOWS = [FileProcessing, SessionSurvivor, SessionHolder]


def _session_worker(env: WorkflowEnvironment, name: str, limit: int = 4) -> Worker:
    return Worker(
        env.client,
        task_queue=QUEUE,
        activities=ACTIVITIES,
        max_concurrent_sessions=limit,
        identity=f"worker-{name}",
    )


def test_activities_of_a_session_run_on_the_worker_that_accepted_it() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with (
            Worker(env.client, task_queue=QUEUE, workflows=WORKFLOWS),
            _session_worker(env, "a"),
            _session_worker(env, "b"),
        ):
            handles = [
                await env.client.start_workflow(
                    FileProcessing.run, f"f{i}", id=f"files-{i}", task_queue=QUEUE
                )
                for i in range(4)
            ]
            results = [await h.result() for h in handles]
        for result in results:
            queue = result["first_queue"]
            assert queue in (f"{QUEUE}@worker-a", f"{QUEUE}@worker-b")
            assert [step.split("|")[0] for step in result["steps"]] == [queue, queue]
            # The recreate token brought the second session back to the same worker.
            assert result["recreated_queue"] == queue
            assert result["recreated_activity"] == queue
            assert result["state_after"] == "CLOSED"
        history = await handles[0].fetch_history()
        # Leaving the session cancelled its creation activity: the worker let go of it.
        assert await has_event(handles[0], EventType.ACTIVITY_TASK_CANCEL_REQUESTED, 2)
        Replayer(workflows=WORKFLOWS).replay_workflow(history)

    run_in_env(scenario)


def test_a_worker_accepts_at_most_max_concurrent_sessions() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with (
            Worker(env.client, task_queue=QUEUE, workflows=WORKFLOWS),
            _session_worker(env, "solo", limit=1) as solo,
        ):
            first = await env.client.start_workflow(SessionHolder.run, id="hold-1", task_queue=QUEUE)
            await eventually(lambda: has_event(first, EventType.WORKFLOW_EXECUTION_SIGNALED))
            second = await env.client.start_workflow(SessionHolder.run, id="hold-2", task_queue=QUEUE)
            # The second session's creation activity waits on the server: a worker with a free
            # slot keeps a poll waiting on that queue, which would take it at once, so a task
            # that stays queued there shows the only slot is taken (no fixed sleep needed).
            assert solo._sessions is not None
            creation_queue = solo._sessions.creation_queue
            ns = await env.host.namespaces.get(env.client.namespace)

            async def waits_on_server() -> bool:
                queued = env.host.matching.queue(ns.id, creation_queue, ACTIVITY_TASK).tasks
                return any(t.workflow_id == "hold-2" for t in queued)

            await eventually(waits_on_server)
            assert not await activity_started(second)
            await first.signal(SessionHolder.done)
            assert await first.result() == f"{QUEUE}@worker-solo"
            await eventually(lambda: has_event(second, EventType.WORKFLOW_EXECUTION_SIGNALED))
            await second.signal(SessionHolder.done)
            assert await second.result() == f"{QUEUE}@worker-solo"

    run_in_env(scenario)


def test_a_session_whose_worker_dies_fails_clearly_and_a_new_one_starts_elsewhere() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=WORKFLOWS):
            doomed = _session_worker(env, "doomed")
            doomed.start()
            handle = await env.client.start_workflow(SessionSurvivor.run, id="survivor", task_queue=QUEUE)
            await eventually(lambda: activity_started(handle, "slow_process"))
            async with _session_worker(env, "spare"):
                await doomed.abandon()  # as if the process died: no more heartbeats
                result = await handle.result()
        assert result["first_queue"] == f"{QUEUE}@worker-doomed"
        assert result["activity_error"] == "SessionFailedError"
        assert result["state"] == "FAILED"
        assert "Session 1 has failed" in result["fail_fast"]
        assert "worker-doomed" in result["fail_fast"]
        assert result["second_queue"] == f"{QUEUE}@worker-spare"
        assert result["second_session_queue"] == f"{QUEUE}@worker-spare"
        history = await handle.fetch_history()
        assert await has_event(handle, EventType.ACTIVITY_TASK_TIMED_OUT)
        Replayer(workflows=WORKFLOWS).replay_workflow(history)

    run_in_env(scenario)
