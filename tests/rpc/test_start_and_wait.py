"""``execute_workflow`` over gRPC: one call starts the run and waits for its close
(``StartWorkflowExecutionAndWait``); a run still open when the wait ends, and a server without the
method, fall back to waiting for the result the usual way."""

from __future__ import annotations

from typing import Any

import pytest

from cadenza.engine.rpc.handlers import Handlers
from cadenza.sdk._grpc import GrpcService

from .conftest import run_in_grpc_env
from .test_complete_and_poll import _unimplemented, count_calls, hellos


def test_execute_workflow_is_one_call_when_the_run_closes_within_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_calls(monkeypatch)
    run_in_grpc_env(hellos(3))
    assert calls["StartWorkflowExecutionAndWait"] == 3
    assert calls["StartWorkflowExecution"] == 0
    assert calls["GetWorkflowExecutionHistory"] == 0


def test_a_run_still_open_when_the_wait_ends_is_waited_for_as_result_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_calls(monkeypatch)
    plain = GrpcService.start_workflow_execution_and_wait

    async def no_wait(self: GrpcService, request: Any, wait_s: float) -> Any:
        started, closed = await plain(self, request, 0.0)
        assert not closed  # nothing ran yet: the worker only gets the task after the start
        return started, closed

    monkeypatch.setattr(GrpcService, "start_workflow_execution_and_wait", no_wait)
    run_in_grpc_env(hellos(3))
    assert calls["StartWorkflowExecutionAndWait"] == 3
    assert calls["GetWorkflowExecutionHistory"] >= 3


def test_a_server_without_the_method_gets_a_start_then_a_result_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_calls(monkeypatch)
    monkeypatch.setattr(Handlers, "StartWorkflowExecutionAndWait", _unimplemented)
    run_in_grpc_env(hellos(3))
    assert calls["StartWorkflowExecutionAndWait"] == 1  # tried once, then not again
    assert calls["StartWorkflowExecution"] == 3
    assert calls["GetWorkflowExecutionHistory"] >= 3
