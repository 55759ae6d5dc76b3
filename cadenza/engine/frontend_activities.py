"""The frontend's activity calls addressed by workflow id and activity id instead of a task token
(the anchors' ``RespondActivityTaskCompletedById`` and kin), for activities completed asynchronously
by something that knows the activity but not its token.

A mixin of ``Frontend``: each call finds the activity's current attempt in the run's state, names
it with the token its worker got, and goes through the token call, so every rule (payload limits,
held completions, the time-skipping bookkeeping) is the same. An attempt that moves on between the
two (retried, timed out) is refused as a stale token would be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cadenza.engine.errors import InvalidArgumentError, TaskNotFoundError
from cadenza.engine.history import workflow_tasks as wft

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine

Payloads = list[dict[str, Any]]


class ActivityByIdOperations:
    history: HistoryEngine

    if TYPE_CHECKING:  # provided by Frontend

        async def _ns_id(self, namespace: str) -> str: ...

        async def record_activity_task_heartbeat(
            self, task_token: bytes, details: Payloads | None, *, identity: str = ""
        ) -> bool: ...

        async def respond_activity_task_completed(
            self, task_token: bytes, result: Payloads | None, *, identity: str = ""
        ) -> None: ...

        async def respond_activity_task_failed(
            self, task_token: bytes, failure: dict[str, Any], *, identity: str = ""
        ) -> None: ...

        async def respond_activity_task_canceled(
            self, task_token: bytes, details: Payloads | None, *, identity: str = ""
        ) -> None: ...

    async def activity_task_token(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str
    ) -> bytes:
        """The token of the running attempt of activity ``activity_id`` of the run (the current
        run when ``run_id`` is empty); NOT_FOUND when it is not pending or not started."""
        if not workflow_id or not activity_id:
            raise InvalidArgumentError("workflow_id and activity_id are required")
        ns_id = await self._ns_id(namespace)
        _, ms = await self.history.get_state(ns_id, workflow_id, run_id)
        for info in ms.activities.values():
            if info.activity_id == activity_id and ms.is_running and info.started_time:
                return wft.encode_token(
                    ns_id, workflow_id, ms.info.run_id, info.scheduled_event_id, info.attempt
                )
        raise TaskNotFoundError(
            f"activity {activity_id!r} of workflow {workflow_id!r} is not running "
            "(it completed, timed out, was never scheduled, or has not started)"
        )

    async def record_activity_task_heartbeat_by_id(
        self,
        namespace: str,
        workflow_id: str,
        run_id: str,
        activity_id: str,
        details: Payloads | None,
        *,
        identity: str = "",
    ) -> bool:
        token = await self.activity_task_token(namespace, workflow_id, run_id, activity_id)
        return await self.record_activity_task_heartbeat(token, details, identity=identity)

    async def respond_activity_task_completed_by_id(
        self,
        namespace: str,
        workflow_id: str,
        run_id: str,
        activity_id: str,
        result: Payloads | None,
        *,
        identity: str = "",
    ) -> None:
        token = await self.activity_task_token(namespace, workflow_id, run_id, activity_id)
        await self.respond_activity_task_completed(token, result, identity=identity)

    async def respond_activity_task_failed_by_id(
        self,
        namespace: str,
        workflow_id: str,
        run_id: str,
        activity_id: str,
        failure: dict[str, Any],
        *,
        identity: str = "",
    ) -> None:
        token = await self.activity_task_token(namespace, workflow_id, run_id, activity_id)
        await self.respond_activity_task_failed(token, failure, identity=identity)

    async def respond_activity_task_canceled_by_id(
        self,
        namespace: str,
        workflow_id: str,
        run_id: str,
        activity_id: str,
        details: Payloads | None,
        *,
        identity: str = "",
    ) -> None:
        token = await self.activity_task_token(namespace, workflow_id, run_id, activity_id)
        await self.respond_activity_task_canceled(token, details, identity=identity)
