"""The transfer tasks that act on other workflows: start a child, signal or cancel another
workflow, and, when a run closes, tell its parent and apply its parent close policy to its
children. Each handler is idempotent (see ``children``); a handler that raises is retried."""

from __future__ import annotations

import logging

from cadenza.engine.errors import (
    NotFoundError,
    WorkflowAlreadyStartedError,
    WorkflowCompletedError,
)
from cadenza.engine.history import children
from cadenza.engine.history.engine import HistoryEngine, ParentRef
from cadenza.engine.history.tasks import Task, TransferKind
from cadenza.schemas.events import CLOSE_EVENT_TYPES, EventType
from cadenza.schemas.service import StartWorkflowRequest

log = logging.getLogger("cadenza.history")


async def process(history: HistoryEngine, t: Task) -> None:
    kind = TransferKind(t.kind)
    if kind == TransferKind.START_CHILD:
        await _start_child(history, t)
    elif kind in (TransferKind.SIGNAL_EXTERNAL, TransferKind.CANCEL_EXTERNAL):
        await _external(history, t, kind)
    elif kind == TransferKind.CLOSE_EXECUTION:
        await _closed(history, t)


async def _start_child(history: HistoryEngine, t: Task) -> None:
    ns, wid, rid = t.namespace_id, t.workflow_id, t.run_id
    initiated_id = t.args["i"]
    try:
        _, ms, events = await history.get_state_and_events(ns, wid, rid)
    except NotFoundError:
        return
    child = ms.children.get(initiated_id)
    if not ms.is_running or child is None or child.run_id:
        return  # the parent closed, or the outcome is recorded already
    a = events[initiated_id - 1].attributes
    req = StartWorkflowRequest(
        namespace="",
        workflow_id=a["workflow_id"],
        workflow_type=a["workflow_type"],
        task_queue=a["task_queue"],
        input=a.get("input"),
        workflow_execution_timeout_ms=a.get("workflow_execution_timeout_ms") or 0,
        workflow_run_timeout_ms=a.get("workflow_run_timeout_ms") or 0,
        workflow_task_timeout_ms=a.get("workflow_task_timeout_ms") or 0,
        request_id=children.request_id(rid, initiated_id),
        identity=f"parent:{wid}",
        workflow_id_reuse_policy=a.get("workflow_id_reuse_policy") or "ALLOW_DUPLICATE",
        retry_policy=a.get("retry_policy"),
        cron_schedule=a.get("cron_schedule") or "",
        memo=a.get("memo"),
        search_attributes=a.get("search_attributes"),
        header=a.get("header"),
    )
    parent = ParentRef(a.get("namespace") or "", wid, rid, initiated_id)
    try:
        child_run_id, _ = await history.start_workflow(ns, req, parent=parent)
    except WorkflowAlreadyStartedError:
        await history.mutate(
            ns,
            wid,
            rid,
            lambda m: children.record_child_start_failed(m, initiated_id, "WORKFLOW_ALREADY_EXISTS"),
        )
        return
    header = a.get("header") or {}
    await history.mutate(
        ns, wid, rid, lambda m: children.record_child_started(m, initiated_id, child_run_id, header)
    )


async def _external(history: HistoryEngine, t: Task, kind: TransferKind) -> None:
    ns, wid, rid = t.namespace_id, t.workflow_id, t.run_id
    initiated_id = t.args["i"]
    try:
        _, ms, events = await history.get_state_and_events(ns, wid, rid)
    except NotFoundError:
        return
    req = ms.external_requests.get(initiated_id)
    if not ms.is_running or req is None:
        return
    a = events[initiated_id - 1].attributes
    target = a["workflow_execution"]
    ok, cause = True, ""
    try:
        if kind == TransferKind.SIGNAL_EXTERNAL:
            await history.signal(
                ns,
                target["workflow_id"],
                target.get("run_id") or "",
                a["signal_name"],
                a.get("input"),
                identity=f"workflow:{wid}",
                request_id=children.request_id(rid, initiated_id),
                header=a.get("header") or {},
            )
        else:
            await history.request_cancel(
                ns,
                target["workflow_id"],
                target.get("run_id") or "",
                identity=f"workflow:{wid}",
                request_id=children.request_id(rid, initiated_id),
            )
    except (NotFoundError, WorkflowCompletedError):
        ok, cause = False, "EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND"
    await history.mutate(ns, wid, rid, lambda m: children.record_external_outcome(m, initiated_id, ok, cause))


async def _closed(history: HistoryEngine, t: Task) -> None:
    ns, wid, rid = t.namespace_id, t.workflow_id, t.run_id
    try:
        _, ms, events = await history.get_state_and_events(ns, wid, rid)
    except NotFoundError:
        return
    info = ms.info
    close = next((e for e in reversed(events) if e.event_type in CLOSE_EVENT_TYPES), None)
    if close is None:
        return
    if info.parent_workflow_id and not t.args.get("chained"):
        initiated_id = info.parent_initiated_event_id
        close_type, close_attrs = close.event_type, close.attributes
        if close_type == EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            close_type = EventType.WORKFLOW_EXECUTION_COMPLETED
        try:
            await history.mutate(
                ns,
                info.parent_workflow_id,
                info.parent_run_id,
                lambda m: children.record_child_closed(m, initiated_id, rid, close_type, close_attrs),
            )
        except NotFoundError:
            pass  # the parent is gone (retention): nobody to tell
    for child in list(ms.children.values()):
        if not child.run_id or child.run_id == "-" or child.parent_close_policy == "ABANDON":
            continue
        try:
            if child.parent_close_policy == "TERMINATE":
                await history.terminate(
                    ns,
                    child.workflow_id,
                    "",
                    reason=f"parent {wid} closed",
                    identity="cadenza-parent-close-policy",
                )
            elif child.parent_close_policy == "REQUEST_CANCEL":
                await history.request_cancel(
                    ns,
                    child.workflow_id,
                    "",
                    identity="cadenza-parent-close-policy",
                    request_id=f"close:{rid}:{child.initiated_event_id}",
                )
        except (NotFoundError, WorkflowCompletedError):
            pass
