"""Workflow updates on the history side (Temporal's UpdateWorkflowExecution).

An update request is *admitted*: kept in memory by the engine (``UpdateRegistry``, beside the
runs' cached states, so dropping a cached state does not lose it) and handed to the worker with
the run's next workflow task (``PollWorkflowTaskResponse.updates``); with no task pending, one is
scheduled *speculatively*, in memory only. The worker runs the update's validator: a rejection
comes back as a command that writes nothing, and a speculative task that ends with rejections
only is dropped as if it had never been, so a rejected update leaves history as it was. An
accepted update is written as WorkflowExecutionUpdateAccepted, its handler's outcome later as
WorkflowExecutionUpdateCompleted; both stay in mutable state (``MutableState.updates``), which
deduplicates requests by update id, also after the update completed.

Admitted updates live in memory only, as in the anchors: a host restart loses those not accepted
yet, and their callers (who wait with a deadline and ask again with the same id) send them again.
A speculative task is made an ordinary one by the run's first write that finds it (``durable``),
so a crash never strands a run with a task that has no durable trigger.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cadenza.engine.errors import (
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    WorkflowCompletedError,
)
from cadenza.engine.history import limits
from cadenza.engine.history.mutable_state import MutableState, WorkflowTaskInfo
from cadenza.engine.history.mutation import Mutation, require_running
from cadenza.engine.history.tasks import Task, TransferKind
from cadenza.schemas.events import EventType
from cadenza.schemas.service import UpdateRequest, UpdateWorkflowRequest, UpdateWorkflowResponse

if TYPE_CHECKING:
    from collections.abc import Callable

    from cadenza.engine.history.engine import HistoryEngine

log = logging.getLogger("cadenza.history")

TRANSIENT_SCHEDULED_ID = -1
"""As ``workflow_tasks.TRANSIENT_SCHEDULED_ID``: a speculative task's ids are assigned at its start."""
STAGES = ("ACCEPTED", "COMPLETED")

RunKey = tuple[str, str, str]


@dataclass(slots=True, eq=False)
class PendingUpdate:
    request: UpdateRequest
    accepted: asyncio.Future[None]
    outcome: asyncio.Future[dict[str, Any]]
    """``{"result": payloads}`` or ``{"failure": failure}`` (a rejection, or the handler failed)."""
    delivered: bool = False
    """Handed to a worker with a workflow task that has not answered it yet."""
    waiters: int = field(default=0)


class UpdateRegistry:
    """Updates admitted to a run and not completed yet, by run and update id."""

    def __init__(self) -> None:
        self._runs: dict[RunKey, dict[str, PendingUpdate]] = {}

    def get(self, key: RunKey, update_id: str) -> PendingUpdate | None:
        run = self._runs.get(key)
        return run.get(update_id) if run else None

    def count(self, key: RunKey) -> int:
        return len(self._runs.get(key) or ())

    def add(self, key: RunKey, request: UpdateRequest) -> PendingUpdate:
        loop = asyncio.get_running_loop()
        pending = PendingUpdate(request, loop.create_future(), loop.create_future())
        self._runs.setdefault(key, {})[request.update_id] = pending
        return pending

    def has(self, key: RunKey) -> bool:
        return key in self._runs

    def deliver(self, key: RunKey) -> list[UpdateRequest]:
        """The requests a workflow task starting now carries: every one not accepted yet."""
        run = self._runs.get(key)
        if not run:
            return []
        out = []
        for p in run.values():
            if not p.accepted.done():
                p.delivered = True
                out.append(p.request)
        return out

    def undelivered(self, key: RunKey) -> bool:
        run = self._runs.get(key) or {}
        return any(not p.delivered and not p.accepted.done() for p in run.values())

    def resolve(self, key: RunKey, effects: list[tuple[str, str, Any]]) -> None:
        run = self._runs.get(key)
        if not run:
            return
        for kind, update_id, value in effects:
            p = run.get(update_id)
            if p is None:
                continue
            if not p.accepted.done():
                p.accepted.set_result(None)
            if kind == "rejected":
                _set(p.outcome, {"failure": value})
            elif kind == "completed":
                _set(p.outcome, value)
            if p.outcome.done():
                del run[update_id]
        if not run:
            del self._runs[key]

    def close_run(self, key: RunKey, ms: MutableState) -> None:
        """The run closed: updates not accepted get the closed-run error (a caller that named no
        run follows the workflow to its next run, if any); accepted ones fail."""
        run = self._runs.pop(key, None) or {}
        for p in run.values():
            if not p.accepted.done():
                try:
                    require_running(ms)
                except WorkflowCompletedError as e:
                    p.accepted.set_exception(e)
                    p.outcome.set_exception(e)
                    # Retrieved here too, so a caller that stopped waiting leaves no warning behind.
                    p.accepted.exception()
                    p.outcome.exception()
            else:
                _set(
                    p.outcome,
                    {
                        "failure": _failure(
                            f"workflow {ms.info.workflow_id!r} closed ({ms.info.status.name}) "
                            "before the update completed",
                            "WorkflowClosed",
                        )
                    },
                )


def _set(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _failure(message: str, application_type: str) -> dict[str, Any]:
    return {
        "message": message,
        "source": "Server",
        "stack_trace": "",
        "failure_type": "ApplicationFailure",
        "application_type": application_type,
        "non_retryable": True,
        "details": None,
        "timeout_type": None,
        "cause": None,
    }


# -- rules -----------------------------------------------------------------------------------------


def schedule_update_task(m: Mutation) -> Task | None:
    """Schedules a speculative workflow task to deliver updates, unless a task is pending (it will
    carry them) or the run cannot take one now; returns the task to offer from memory."""
    ms = m.ms
    if not ms.is_running or ms.has_pending_workflow_task:
        m.noop = True
        return None
    if ms.info.execution_time > m.now and not ms.info.last_completed_workflow_task_event_id:
        m.noop = True  # a cron run before its first fire: the backoff timer schedules the task
        return None
    ms.workflow_task = WorkflowTaskInfo(
        scheduled_event_id=TRANSIENT_SCHEDULED_ID,
        attempt=1,
        scheduled_time=m.now,
        timeout_ms=ms.info.workflow_task_timeout_ms,
        task_queue=ms.info.task_queue,
        transient=True,
        speculative=True,
    )
    m.speculative = True
    args: dict[str, Any] = {"s": TRANSIENT_SCHEDULED_ID, "a": 1, "q": ms.info.task_queue}
    if ms.info.sticky_task_queue:
        args = {
            **args,
            "q": ms.info.sticky_task_queue,
            "n": ms.info.task_queue,
            "st": ms.info.sticky_schedule_to_start_timeout_ms,
        }
    ns, wid, rid = m.key
    return Task(int(TransferKind.WORKFLOW_TASK), ns, wid, rid, args)


def durable(m: Mutation) -> None:
    """A write of a run with a speculative task pending: from now on it is an ordinary transient
    task, with a transfer task if it has not started (a started one is guarded by its timeout
    timer, which the write carries)."""
    wt = m.ms.workflow_task
    if not wt.speculative:
        return
    wt.speculative = False
    if not wt.started_event_id and m.ms.is_running:
        m.transfer(TransferKind.WORKFLOW_TASK, s=TRANSIENT_SCHEDULED_ID, a=wt.attempt, q=wt.task_queue)


def drop_rejected_task(m: Mutation, rejections: list[tuple[str, Any]], keep_sticky: bool) -> bool:
    """A speculative task that ends with updates rejected and nothing else to record is dropped:
    history stays as it was. False when it must be written as usual (events arrived meanwhile)."""
    ms = m.ms
    wt = ms.workflow_task
    if not wt.speculative or ms.buffered_events or ms.pending_events:
        return False
    ms.workflow_task = WorkflowTaskInfo()
    if not keep_sticky:
        ms.clear_stickiness()
    m.update_effects.extend(("rejected", uid, failure) for uid, failure in rejections)
    m.speculative = True
    return True


def accept(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ms = m.ms
    update_id = a.get("update_id") or ""
    if update_id in ms.updates:
        return  # accepted before (a task answered twice): once in history
    ms.add_event(
        EventType.WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
        m.now,
        {
            "update_id": update_id,
            "name": a.get("name") or "",
            "input": a.get("input"),
            "header": a.get("header") or {},
            "identity": a.get("identity") or "",
            "workflow_task_completed_event_id": completed_id,
        },
    )
    m.update_effects.append(("accepted", update_id, None))


def complete(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ms = m.ms
    update_id = a.get("update_id") or ""
    entry = ms.updates.get(update_id)
    if entry is None or entry[1]:
        return
    outcome = {"result": a.get("result"), "failure": a.get("failure")}
    ms.add_event(
        EventType.WORKFLOW_EXECUTION_UPDATE_COMPLETED,
        m.now,
        {"update_id": update_id, "accepted_event_id": entry[0], **outcome, "identity": ""},
    )
    m.update_effects.append(("completed", update_id, outcome))


def reject(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    m.update_effects.append(("rejected", a.get("update_id") or "", a.get("failure")))


def validate_command(where: str, a: dict[str, Any]) -> str | None:
    """A problem with an update command's attributes, or None."""
    if not a.get("update_id"):
        return f"{where}: update_id is required"
    return None


# -- the engine's side -----------------------------------------------------------------------------


class Updates:
    """Admits updates, gets them to a workflow task and answers their callers."""

    def __init__(self, engine: HistoryEngine) -> None:
        self.engine = engine
        self.registry = UpdateRegistry()
        self.offer: Callable[[Task], None] | None = None
        """Offers a workflow task that lives in memory only to matching (set by the host)."""
        self._background: set[asyncio.Task[Any]] = set()

    async def update(self, namespace_id: str, req: UpdateWorkflowRequest) -> UpdateWorkflowResponse:
        if not req.update_id:
            raise InvalidArgumentError("update_id is required")
        if req.wait_stage not in STAGES:
            raise InvalidArgumentError(
                f"wait_stage must be one of {', '.join(STAGES)}, got {req.wait_stage!r}"
            )
        limits.validate_payloads("input", req.input)
        wid = req.execution.workflow_id
        return await self.engine.on_current_run(
            namespace_id,
            wid,
            req.execution.run_id,
            lambda rid: self._update_run((namespace_id, wid, rid), req),
        )

    async def _update_run(self, key: RunKey, req: UpdateWorkflowRequest) -> UpdateWorkflowResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(req.timeout_s, 0.0)
        ns, wid, rid = key
        ctx, ms = await self.engine.get_state(ns, wid, rid)
        pending = self.registry.get(key, req.update_id)
        if pending is None and req.update_id not in ms.updates:
            if not req.name:
                # Asked for by id alone (a handle's ``result``), but not known here.
                raise NotFoundError(
                    f"update {req.update_id!r} not found on workflow {wid!r} run {rid}",
                    workflow_id=wid,
                    run_id=rid,
                )
            require_running(ms)
            self._check_limits(key, ms)
            pending = self.registry.add(
                key, UpdateRequest(req.update_id, req.name, req.input, req.header or {}, req.identity)
            )
            await self.ensure_task(key)
        elif pending is not None and not pending.accepted.done():
            if not pending.delivered:
                await self.ensure_task(key)
            elif not ms.has_pending_workflow_task:
                # Handed to a task that ended without answering it: offer it again.
                pending.delivered = False
                await self.ensure_task(key)
        while True:
            # The entry leaves the registry once the update completes: keep the one at hand.
            pending = pending or self.registry.get(key, req.update_id)
            response = await self._outcome(key, req, pending)
            if response is not None:
                return response
            remaining = deadline - loop.time()
            if remaining <= 0:
                return UpdateWorkflowResponse(req.update_id, rid, "ADMITTED")
            if pending is not None:
                fut = pending.accepted if req.wait_stage == "ACCEPTED" else pending.outcome
                try:
                    await asyncio.wait_for(asyncio.shield(fut), remaining)
                except TimeoutError:
                    pass
            else:
                # Accepted before this host knew the request (or the state was reloaded): watch
                # the run's history for the outcome.
                ctx = (await self.engine.run_context(ns, wid, rid))[1]
                await self.engine.wait_for_change(ctx, min(remaining, 5.0))

    async def _outcome(
        self, key: RunKey, req: UpdateWorkflowRequest, pending: PendingUpdate | None
    ) -> UpdateWorkflowResponse | None:
        """The response if the update reached the stage asked for (or a final one), else None."""
        ns, wid, rid = key
        if pending is not None:
            if pending.outcome.done():
                outcome = pending.outcome.result()  # a closed run raises here
                return UpdateWorkflowResponse(
                    req.update_id, rid, "COMPLETED", outcome.get("result"), outcome.get("failure")
                )
            if pending.accepted.done():
                pending.accepted.result()
                if req.wait_stage == "ACCEPTED":
                    return UpdateWorkflowResponse(req.update_id, rid, "ACCEPTED")
            return None
        _, ms = await self.engine.get_state(ns, wid, rid)
        entry = ms.updates.get(req.update_id)
        if entry is None:
            if not ms.is_running:
                require_running(ms)
            return None  # admitted on another host, or lost with one: the caller asks again
        completed_id = entry[1]
        if completed_id:
            _, _, events = await self.engine.get_state_and_events(ns, wid, rid)
            a = events[completed_id - 1].attributes
            return UpdateWorkflowResponse(req.update_id, rid, "COMPLETED", a.get("result"), a.get("failure"))
        if not ms.is_running:
            return UpdateWorkflowResponse(
                req.update_id,
                rid,
                "COMPLETED",
                None,
                _failure(
                    f"workflow {wid!r} closed ({ms.info.status.name}) before the update completed",
                    "WorkflowClosed",
                ),
            )
        if req.wait_stage == "ACCEPTED":
            return UpdateWorkflowResponse(req.update_id, rid, "ACCEPTED")
        return None

    def _check_limits(self, key: RunKey, ms: MutableState) -> None:
        wid = ms.info.workflow_id
        in_flight = self.registry.count(key) + sum(1 for _, done in ms.updates.values() if not done)
        if in_flight >= limits.MAX_IN_FLIGHT_UPDATES:
            raise ResourceExhaustedError(
                f"workflow {wid!r} has {in_flight} updates in flight, the limit of "
                f"{limits.MAX_IN_FLIGHT_UPDATES}; try again once some complete",
                limit=limits.MAX_IN_FLIGHT_UPDATES,
            )
        total = len(ms.updates) + self.registry.count(key)
        if total >= limits.MAX_UPDATES:
            raise ResourceExhaustedError(
                f"workflow {wid!r} has received {total} updates, the limit of {limits.MAX_UPDATES} "
                "per run; continue it as new to receive more",
                limit=limits.MAX_UPDATES,
            )

    async def ensure_task(self, key: RunKey) -> None:
        """Schedules a (speculative) workflow task to deliver the run's updates, if none is pending."""
        ns, wid, rid = key
        task = await self.engine.mutate(ns, wid, rid, schedule_update_task)
        if task is not None and self.offer is not None:
            self.offer(task)

    def after_write(self, m: Mutation) -> None:
        """Called by the engine once a change of the run is in effect (written, or kept in memory)."""
        key = m.key
        if m.update_effects:
            self.registry.resolve(key, m.update_effects)
        if not self.registry.has(key):
            return
        ms = m.ms
        if not ms.is_running:
            self.registry.close_run(key, ms)
        elif not ms.has_pending_workflow_task and self.registry.undelivered(key):
            bg = asyncio.get_running_loop().create_task(self._ensure_quietly(key))
            self._background.add(bg)
            bg.add_done_callback(self._background.discard)

    async def _ensure_quietly(self, key: RunKey) -> None:
        try:
            await self.ensure_task(key)
        except Exception as e:  # the caller's next wait asks again
            log.debug("scheduling a workflow task for updates of %s failed: %s", key[1], e)
