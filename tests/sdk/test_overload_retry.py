"""The SDK's answer to a server over its limits, without time passing: the wait before each retry
honours the server's hint with jitter and a bounded total, only calls safe to repeat are retried,
only refusals that carry a hint are retried at all, and a worker's poll loop backs off."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cadenza.engine.errors import ResourceExhaustedError
from cadenza.exceptions import RPCError
from cadenza.sdk._local import LocalService
from cadenza.sdk._overload import (
    RETRIED_ON_OVERLOAD,
    RETRIED_ON_OVERLOAD_CALLS,
    OverloadRetry,
    PollBackoff,
    python_name,
)


def refusal(ms: int) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"namespace 'video' is over its rate; retry in {ms} ms",
        namespace="video",
        limit_name="frontend.namespaceRPS",
        limit=2,
        retry_after_ms=ms,
    )


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FlakyFrontend:
    """Refuses the first ``refusals`` calls of each method with ``error``, then answers."""

    def __init__(self, refusals: int, error: Exception) -> None:
        self.refusals = refusals
        self.error = error
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] <= self.refusals:
            raise self.error

    async def start_workflow_execution(self, request: Any) -> str:
        self._count("start_workflow_execution")
        return "started"

    async def reset_workflow_execution(self, namespace: str, execution: Any, **kw: Any) -> str:
        self._count("reset_workflow_execution")
        return "reset"


def test_the_wait_honours_the_hint_with_jitter_and_a_bounded_total() -> None:
    jitter = iter([0.0, 1.0, 0.5, 0.0, 0.0])
    policy = OverloadRetry(2.0, initial_backoff=0.05, max_backoff=1.0, rand=lambda: next(jitter))
    assert policy.next_wait(0.3) == pytest.approx(0.3)  # no jitter drawn: exactly the hint
    assert policy.next_wait(0.3) == pytest.approx(0.45)  # full jitter: 50% above the hint
    # A hint below the growing floor (0.05 * 2**2 = 0.2) waits the floor.
    assert policy.next_wait(0.01) == pytest.approx(0.2 * 1.25)
    assert policy.waited_s == pytest.approx(1.0)
    assert policy.next_wait(0.9) == pytest.approx(0.9)
    # 0.1 s of budget left: a hint of 0.5 s cannot be honoured, so the caller gets the refusal.
    assert policy.next_wait(0.5) is None
    assert policy.attempts == 4


def test_the_retried_calls_are_those_safe_to_repeat() -> None:
    assert "start_workflow_execution" in RETRIED_ON_OVERLOAD_CALLS
    assert "signal_workflow_execution" in RETRIED_ON_OVERLOAD_CALLS
    assert "update_with_start_workflow_execution" in RETRIED_ON_OVERLOAD_CALLS
    assert "get_cluster_info" in RETRIED_ON_OVERLOAD_CALLS
    # Reset makes a new run and has no request id; a worker's polls back off in their own loops.
    for name in ("reset_workflow_execution", "poll_workflow_task_queue", "respond_workflow_task_completed"):
        assert name not in RETRIED_ON_OVERLOAD_CALLS
    assert python_name("GetClusterInfo") == "get_cluster_info"
    assert len(RETRIED_ON_OVERLOAD_CALLS) == len(RETRIED_ON_OVERLOAD)


def test_a_start_refused_for_overload_is_retried_until_admitted() -> None:
    sleep = FakeSleep()
    frontend = FlakyFrontend(3, refusal(400))
    service = LocalService(frontend, max_overload_wait=10.0, sleep=sleep)
    assert asyncio.run(service.start_workflow_execution(object())) == "started"
    assert frontend.calls["start_workflow_execution"] == 4
    assert len(sleep.waits) == 3 and all(0.4 <= w <= 0.6 for w in sleep.waits)


def test_the_refusal_is_raised_with_its_hint_once_the_budget_is_spent() -> None:
    sleep = FakeSleep()
    frontend = FlakyFrontend(100, refusal(1000))
    service = LocalService(frontend, max_overload_wait=3.0, sleep=sleep)
    with pytest.raises(RPCError) as e:
        asyncio.run(service.start_workflow_execution(object()))
    assert e.value.status == "RESOURCE_EXHAUSTED" and e.value.retry_after == 1.0
    assert e.value.details["namespace"] == "video"
    assert 1 <= len(sleep.waits) <= 3 and sum(sleep.waits) <= 3.0


def test_a_call_not_safe_to_repeat_is_not_retried() -> None:
    sleep = FakeSleep()
    frontend = FlakyFrontend(1, refusal(100))
    service = LocalService(frontend, sleep=sleep)
    with pytest.raises(RPCError) as e:
        asyncio.run(service.reset_workflow_execution("video", object(), reset_type="LastWorkflowTask"))
    assert e.value.retry_after == pytest.approx(0.1)
    assert frontend.calls["reset_workflow_execution"] == 1 and sleep.waits == []


def test_resource_exhausted_without_a_hint_is_final() -> None:
    sleep = FakeSleep()
    frontend = FlakyFrontend(1, ResourceExhaustedError("signal limit of 3 reached", limit=3))
    service = LocalService(frontend, sleep=sleep)
    with pytest.raises(RPCError) as e:
        asyncio.run(service.start_workflow_execution(object()))
    assert e.value.status == "RESOURCE_EXHAUSTED" and e.value.retry_after is None
    assert frontend.calls["start_workflow_execution"] == 1 and sleep.waits == []


def test_no_budget_means_no_retry() -> None:
    sleep = FakeSleep()
    frontend = FlakyFrontend(1, refusal(100))
    service = LocalService(frontend, max_overload_wait=0.0, sleep=sleep)
    with pytest.raises(RPCError):
        asyncio.run(service.start_workflow_execution(object()))
    assert sleep.waits == []


def test_a_refused_poll_backs_off_growing_and_a_served_one_starts_over() -> None:
    backoff = PollBackoff(other_s=0.2, max_s=5.0, rand=lambda: 0.0)
    refused = RPCError("RESOURCE_EXHAUSTED", "no poll slot", details={"retry_after_ms": 1000})
    assert [backoff.pause_s(refused) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.pause_s(RPCError("UNAVAILABLE", "down")) == 0.2
    assert backoff.pause_s(RuntimeError("boom")) == 0.2
    backoff.reset()
    assert backoff.pause_s(refused) == 1.0
    jittered = PollBackoff(rand=lambda: 1.0)
    assert jittered.pause_s(refused) == 1.5
