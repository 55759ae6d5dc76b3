"""Child workflows and requests to other workflows (signal, cancel): the parent's side.

A command records its "initiated" event and a transfer task; the task does the cross-workflow call
and then records the outcome in the parent (started / failed / signalled / cancel requested), as the
anchors do. Every step is idempotent: the child is started with a request id derived from the
parent's run and initiated event, a signal carries a request id the target de-duplicates, and the
parent records an outcome only while the request is still pending.
"""

from __future__ import annotations

from typing import Any

from cadenza.engine.history.mutation import Mutation
from cadenza.engine.history.tasks import TransferKind
from cadenza.schemas.events import EventType

PARENT_CLOSE_POLICIES = ("TERMINATE", "REQUEST_CANCEL", "ABANDON")


def request_id(run_id: str, initiated_event_id: int) -> str:
    """The id that makes a retried cross-workflow call a no-op at its target."""
    return f"{run_id}:{initiated_event_id}"


def start_child(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ms = m.ms
    ev = ms.add_event(
        EventType.START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        m.now,
        {
            "namespace": a.get("namespace") or "",
            "workflow_id": a["workflow_id"],
            "workflow_type": a["workflow_type"],
            "task_queue": a.get("task_queue") or ms.info.task_queue,
            "input": a.get("input"),
            "workflow_execution_timeout_ms": a.get("workflow_execution_timeout_ms") or 0,
            "workflow_run_timeout_ms": a.get("workflow_run_timeout_ms") or 0,
            "workflow_task_timeout_ms": a.get("workflow_task_timeout_ms") or 0,
            "parent_close_policy": a.get("parent_close_policy") or "TERMINATE",
            "control": a.get("control"),
            "workflow_task_completed_event_id": completed_id,
            "workflow_id_reuse_policy": a.get("workflow_id_reuse_policy") or "ALLOW_DUPLICATE",
            "retry_policy": a.get("retry_policy"),
            "cron_schedule": a.get("cron_schedule"),
            "header": a.get("header") or {},
            "memo": a.get("memo") or {},
            "search_attributes": a.get("search_attributes") or {},
        },
    )
    m.transfer(TransferKind.START_CHILD, i=ev.event_id)


def signal_external(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ev = m.ms.add_event(
        EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        m.now,
        {
            "workflow_task_completed_event_id": completed_id,
            "namespace": a.get("namespace") or "",
            "workflow_execution": {"workflow_id": a["workflow_id"], "run_id": a.get("run_id") or ""},
            "signal_name": a["signal_name"],
            "input": a.get("input"),
            "control": a.get("control"),
            "child_workflow_only": bool(a.get("child_workflow_only")),
            "header": a.get("header") or {},
        },
    )
    m.transfer(TransferKind.SIGNAL_EXTERNAL, i=ev.event_id)


def cancel_external(m: Mutation, a: dict[str, Any], completed_id: int) -> None:
    ev = m.ms.add_event(
        EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        m.now,
        {
            "workflow_task_completed_event_id": completed_id,
            "namespace": a.get("namespace") or "",
            "workflow_execution": {"workflow_id": a["workflow_id"], "run_id": a.get("run_id") or ""},
            "control": a.get("control"),
            "child_workflow_only": bool(a.get("child_workflow_only")),
        },
    )
    m.transfer(TransferKind.CANCEL_EXTERNAL, i=ev.event_id)


# -- outcomes recorded in the parent ------------------------------------------------------------------


def record_child_started(m: Mutation, initiated_id: int, run_id: str, header: dict[str, Any]) -> None:
    ms = m.ms
    child = ms.children.get(initiated_id)
    if not ms.is_running or child is None or child.run_id:
        m.noop = True
        return
    child.run_id = run_id  # before the event is written too, so a retried task records nothing twice
    ms.add_or_buffer(
        EventType.CHILD_WORKFLOW_EXECUTION_STARTED,
        m.now,
        {
            "namespace": child.namespace,
            "initiated_event_id": initiated_id,
            "workflow_execution": {"workflow_id": child.workflow_id, "run_id": run_id},
            "workflow_type": child.workflow_type,
            "header": header,
        },
    )
    m.schedule_workflow_task()


def record_child_start_failed(m: Mutation, initiated_id: int, cause: str) -> None:
    ms = m.ms
    child = ms.children.get(initiated_id)
    if not ms.is_running or child is None or child.run_id:
        m.noop = True
        return
    child.run_id = "-"  # resolved: a retried task must not record it again
    ms.add_or_buffer(
        EventType.START_CHILD_WORKFLOW_EXECUTION_FAILED,
        m.now,
        {
            "namespace": child.namespace,
            "workflow_id": child.workflow_id,
            "workflow_type": child.workflow_type,
            "cause": cause,
            "control": None,
            "initiated_event_id": initiated_id,
            "workflow_task_completed_event_id": 0,
        },
    )
    m.schedule_workflow_task()


_CHILD_CLOSE_EVENT = {
    EventType.WORKFLOW_EXECUTION_COMPLETED: EventType.CHILD_WORKFLOW_EXECUTION_COMPLETED,
    EventType.WORKFLOW_EXECUTION_FAILED: EventType.CHILD_WORKFLOW_EXECUTION_FAILED,
    EventType.WORKFLOW_EXECUTION_CANCELED: EventType.CHILD_WORKFLOW_EXECUTION_CANCELED,
    EventType.WORKFLOW_EXECUTION_TIMED_OUT: EventType.CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.WORKFLOW_EXECUTION_TERMINATED: EventType.CHILD_WORKFLOW_EXECUTION_TERMINATED,
}


class ChildNotStartedYet(Exception):
    """The child closed before its parent recorded it started; the close is reported again later."""


def record_child_closed(
    m: Mutation, initiated_id: int, child_run_id: str, close_type: EventType, close_attrs: dict[str, Any]
) -> None:
    ms = m.ms
    child = ms.children.get(initiated_id)
    if not ms.is_running or child is None or child.started_event_id < 0:
        m.noop = True
        return
    if not child.run_id:
        raise ChildNotStartedYet(
            f"child {child.workflow_id} of {ms.info.workflow_id} not recorded started yet"
        )
    child.started_event_id = -abs(child.started_event_id) or -1  # resolved: recorded (or buffered) once
    attrs: dict[str, Any] = {
        "namespace": child.namespace,
        "workflow_execution": {"workflow_id": child.workflow_id, "run_id": child_run_id},
        "workflow_type": child.workflow_type,
        "initiated_event_id": initiated_id,
        "started_event_id": 0,
    }
    event_type = _CHILD_CLOSE_EVENT[close_type]
    if event_type == EventType.CHILD_WORKFLOW_EXECUTION_COMPLETED:
        attrs["result"] = close_attrs.get("result")
    elif event_type == EventType.CHILD_WORKFLOW_EXECUTION_FAILED:
        attrs["failure"] = close_attrs.get("failure")
        attrs["retry_state"] = close_attrs.get("retry_state")
    elif event_type == EventType.CHILD_WORKFLOW_EXECUTION_CANCELED:
        attrs["details"] = close_attrs.get("details")
    elif event_type == EventType.CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
        attrs["retry_state"] = close_attrs.get("retry_state")
    ms.add_or_buffer(event_type, m.now, attrs)
    m.schedule_workflow_task()


def record_external_outcome(m: Mutation, initiated_id: int, ok: bool, cause: str = "") -> None:
    ms = m.ms
    req = ms.external_requests.get(initiated_id)
    if not ms.is_running or req is None or req.run_id == "\x00resolved":
        m.noop = True
        return
    target = {"workflow_id": req.workflow_id, "run_id": req.run_id}
    req.run_id = "\x00resolved"
    if req.kind == "signal":
        if ok:
            ms.add_or_buffer(
                EventType.EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
                m.now,
                {
                    "initiated_event_id": initiated_id,
                    "namespace": req.namespace,
                    "workflow_execution": target,
                    "control": None,
                },
            )
        else:
            ms.add_or_buffer(
                EventType.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
                m.now,
                {
                    "cause": cause,
                    "workflow_task_completed_event_id": 0,
                    "namespace": req.namespace,
                    "workflow_execution": target,
                    "initiated_event_id": initiated_id,
                    "control": None,
                },
            )
    elif ok:
        ms.add_or_buffer(
            EventType.EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            m.now,
            {"initiated_event_id": initiated_id, "namespace": req.namespace, "workflow_execution": target},
        )
    else:
        ms.add_or_buffer(
            EventType.REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            m.now,
            {
                "cause": cause,
                "workflow_task_completed_event_id": 0,
                "namespace": req.namespace,
                "workflow_execution": target,
                "initiated_event_id": initiated_id,
                "control": None,
            },
        )
    m.schedule_workflow_task()
