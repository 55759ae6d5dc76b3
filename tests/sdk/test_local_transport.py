"""The in-process transport retries UNAVAILABLE for the client's calls, as the network one does.

A signal, cancel or terminate addressed by workflow id can meet a run that continues as new so fast
that the server answers ``UNAVAILABLE: ... its current run keeps changing, try again``; the client
tries again with backoff, a few times, then raises.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cadenza.client import Client
from cadenza.engine import errors as server_errors
from cadenza.exceptions import RPCError, WorkflowNotFoundError
from cadenza.schemas.service import WorkflowExecution
from cadenza.sdk._local import local_service

KEEPS_CHANGING = "workflow 'w': its current run keeps changing, try again"


class FlakyFrontend:
    """Answers UNAVAILABLE ``failures`` times per method, then records the call."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[str, int] = {}
        self.calls: list[tuple[str, WorkflowExecution, dict[str, Any]]] = []

    def _attempt(self, method: str, execution: WorkflowExecution, kwargs: dict[str, Any]) -> None:
        self.attempts[method] = self.attempts.get(method, 0) + 1
        if self.attempts[method] <= self.failures:
            raise server_errors.UnavailableError(KEEPS_CHANGING)
        self.calls.append((method, execution, kwargs))

    async def signal_workflow_execution(
        self, namespace: str, execution: WorkflowExecution, name: str, input: Any, **kwargs: Any
    ) -> None:
        self._attempt("signal", execution, {"name": name, **kwargs})

    async def request_cancel_workflow_execution(
        self, namespace: str, execution: WorkflowExecution, **kwargs: Any
    ) -> None:
        self._attempt("cancel", execution, kwargs)

    async def terminate_workflow_execution(
        self, namespace: str, execution: WorkflowExecution, **kwargs: Any
    ) -> None:
        self._attempt("terminate", execution, kwargs)

    async def respond_activity_task_completed(self, task_token: bytes, result: Any, **kwargs: Any) -> None:
        self._attempt("complete", WorkflowExecution("", ""), kwargs)


def test_signal_cancel_and_terminate_by_workflow_id_retry_unavailable() -> None:
    async def main() -> None:
        frontend = FlakyFrontend(failures=2)
        handle = Client(local_service(frontend)).get_workflow_handle("w")
        await handle.signal("poke", 1)
        await handle.cancel()
        await handle.terminate("enough")
        assert frontend.attempts == {"signal": 3, "cancel": 3, "terminate": 3}
        assert [(m, ex.workflow_id, ex.run_id) for m, ex, _ in frontend.calls] == [
            ("signal", "w", ""),
            ("cancel", "w", ""),
            ("terminate", "w", ""),
        ]
        # The retried signal kept its request id, so the server can drop a duplicate.
        assert frontend.calls[0][2]["request_id"]

    asyncio.run(main())


def test_unavailable_is_raised_after_a_few_attempts() -> None:
    async def main() -> None:
        frontend = FlakyFrontend(failures=1000)
        handle = Client(local_service(frontend)).get_workflow_handle("w")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RPCError) as info:
            await handle.signal("poke")
        assert info.value.status == "UNAVAILABLE"
        assert "keeps changing" in info.value.message
        assert 2 <= frontend.attempts["signal"] <= 10
        assert loop.time() - started < 10

    asyncio.run(main())


def test_other_errors_and_the_workers_reports_are_not_retried() -> None:
    class Gone(FlakyFrontend):
        async def signal_workflow_execution(
            self, namespace: str, execution: WorkflowExecution, name: str, input: Any, **kwargs: Any
        ) -> None:
            self.attempts["signal"] = self.attempts.get("signal", 0) + 1
            raise server_errors.WorkflowNotFoundError("gone", workflow_id="w", run_id="")

    async def main() -> None:
        frontend = Gone(failures=1)
        service = local_service(frontend)
        with pytest.raises(WorkflowNotFoundError):
            await Client(service).get_workflow_handle("w").signal("poke")
        assert frontend.attempts["signal"] == 1
        # A lost activity report is left to the attempt's timeout, as the engine expects.
        with pytest.raises(RPCError):
            await service.respond_activity_task_completed(b"token", None, identity="me")
        assert frontend.attempts["complete"] == 1

    asyncio.run(main())


def test_a_store_it_cannot_reach_is_unavailable_and_retried() -> None:
    """The engine raises the store's own error when Cassandra cannot be reached; the client sees
    UNAVAILABLE (as over gRPC) naming the store, retries the calls it retries, and a report that
    is not retried gets UNAVAILABLE too rather than the raw error."""
    from cadenza.engine.persistence.errors import StoreUnavailableError

    class StoreDown(FlakyFrontend):
        def _attempt(self, method: str, execution: WorkflowExecution, kwargs: dict[str, Any]) -> None:
            self.attempts[method] = self.attempts.get(method, 0) + 1
            if self.attempts[method] <= self.failures:
                raise StoreUnavailableError("cannot reach Cassandra at 127.0.0.1:9042")
            self.calls.append((method, execution, kwargs))

    async def main() -> None:
        frontend = StoreDown(failures=2)
        service = local_service(frontend)
        await Client(service).get_workflow_handle("w").signal("poke")
        assert frontend.attempts["signal"] == 3
        with pytest.raises(RPCError) as info:
            await service.respond_activity_task_completed(b"token", None, identity="me")
        assert info.value.status == "UNAVAILABLE"
        assert "cannot reach Cassandra" in info.value.message

    asyncio.run(main())
