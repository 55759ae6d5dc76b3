"""Between the ``WorkflowService`` dataclasses and the API's Avro records, both directions.

The client and the server share these functions, so a field added to a message is converted the
same way on both sides. Records are what fastavro reads and writes: plain dicts whose keys are the
schema's field names. History travels as ``encode_events`` bytes, never re-described.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from cadenza.schemas.api._generate import command_attribute_name
from cadenza.schemas.codec import decode_events, encode_events
from cadenza.schemas.events import Command, CommandType, HistoryEvent
from cadenza.schemas.service import (
    DescribeWorkflowResponse,
    ListWorkflowExecutionsResponse,
    NamespaceInfo,
    PendingActivity,
    PollActivityTaskResponse,
    PollWorkflowTaskResponse,
    StartWorkflowRequest,
    UpdateRequest,
    UpdateWorkflowRequest,
    UpdateWorkflowResponse,
    WorkflowExecution,
    WorkflowExecutionInfo,
    WorkflowTaskQuery,
)

_NAMESPACE = "io.cadenza.api.v1"
_COMMAND_BRANCH = {ct: f"{_NAMESPACE}.{command_attribute_name(ct)}" for ct in CommandType}
_COMMAND_TYPES = {int(ct): ct for ct in CommandType}


def _flat(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, without ``asdict``'s deep copy of every payload."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def execution_to_record(e: WorkflowExecution) -> dict[str, Any]:
    return {"workflow_id": e.workflow_id, "run_id": e.run_id}


def execution_from_record(r: dict[str, Any]) -> WorkflowExecution:
    return WorkflowExecution(r["workflow_id"], r["run_id"])


def start_request_to_record(req: StartWorkflowRequest) -> dict[str, Any]:
    r = _flat(req)
    for name in ("memo", "search_attributes", "header"):
        r[name] = r[name] or {}
    return r


def start_request_from_record(r: dict[str, Any]) -> StartWorkflowRequest:
    return StartWorkflowRequest(**r)


def namespace_to_record(info: NamespaceInfo) -> dict[str, Any]:
    return _flat(info)


def namespace_from_record(r: dict[str, Any]) -> NamespaceInfo:
    return NamespaceInfo(**r)


def describe_to_record(d: DescribeWorkflowResponse) -> dict[str, Any]:
    r = _flat(d)
    r["pending_activities"] = [_flat(a) for a in d.pending_activities]
    return r


def describe_from_record(r: dict[str, Any]) -> DescribeWorkflowResponse:
    r = dict(r)
    r["pending_activities"] = [PendingActivity(**a) for a in r["pending_activities"]]
    return DescribeWorkflowResponse(**r)


def history_to_bytes(events: list[HistoryEvent]) -> bytes:
    return encode_events(events)


def history_from_bytes(data: bytes) -> list[HistoryEvent]:
    return decode_events(data) if data else []


def workflow_task_to_record(t: PollWorkflowTaskResponse) -> dict[str, Any]:
    return {
        "task_token": t.task_token,
        "workflow_execution": execution_to_record(t.workflow_execution),
        "workflow_type": t.workflow_type,
        "namespace": t.namespace,
        "attempt": t.attempt,
        "started_event_id": t.started_event_id,
        "history": history_to_bytes(t.history),
        "query": _flat(t.query) if t.query is not None else None,
        "updates": [{**_flat(u), "header": u.header or {}} for u in t.updates],
    }


def workflow_task_from_record(r: dict[str, Any]) -> PollWorkflowTaskResponse:
    q = r["query"]
    return PollWorkflowTaskResponse(
        task_token=r["task_token"],
        workflow_execution=execution_from_record(r["workflow_execution"]),
        workflow_type=r["workflow_type"],
        namespace=r["namespace"],
        attempt=r["attempt"],
        started_event_id=r["started_event_id"],
        history=history_from_bytes(r["history"]),
        query=WorkflowTaskQuery(**q) if q is not None else None,
        updates=[UpdateRequest(**u) for u in r.get("updates") or ()],
    )


def update_request_to_record(req: UpdateWorkflowRequest) -> dict[str, Any]:
    r = _flat(req)
    r["execution"] = execution_to_record(req.execution)
    r["header"] = r["header"] or {}
    return r


def update_request_from_record(r: dict[str, Any]) -> UpdateWorkflowRequest:
    fields = {k: r[k] for k in _UPDATE_REQUEST_FIELDS}
    return UpdateWorkflowRequest(**{**fields, "execution": execution_from_record(r["execution"])})


_UPDATE_REQUEST_FIELDS = (
    "namespace",
    "execution",
    "update_id",
    "name",
    "input",
    "header",
    "identity",
    "wait_stage",
    "timeout_s",
)


def update_response_to_record(resp: UpdateWorkflowResponse) -> dict[str, Any]:
    return {
        "update_id": resp.update_id,
        "update_run_id": resp.run_id,
        "stage": resp.stage,
        "result": resp.result,
        "failure": resp.failure,
    }


def update_response_from_record(r: dict[str, Any]) -> UpdateWorkflowResponse:
    return UpdateWorkflowResponse(
        update_id=r["update_id"],
        run_id=r["update_run_id"],
        stage=r["stage"],
        result=r["result"],
        failure=r["failure"],
    )


def activity_task_to_record(t: PollActivityTaskResponse) -> dict[str, Any]:
    r = _flat(t)
    r["workflow_execution"] = execution_to_record(t.workflow_execution)
    r["header"] = r["header"] or {}
    return r


def activity_task_from_record(r: dict[str, Any]) -> PollActivityTaskResponse:
    r = dict(r)
    r["workflow_execution"] = execution_from_record(r["workflow_execution"])
    return PollActivityTaskResponse(**r)


def commands_to_records(commands: list[Command]) -> list[dict[str, Any]]:
    # The attributes union's branch is named explicitly: fastavro would otherwise try each of the
    # thirteen records in turn, and several accept the same sparse dict.
    return [
        {"command_type": int(c.command_type), "attributes": (_COMMAND_BRANCH[c.command_type], c.attributes)}
        for c in commands
    ]


def commands_from_records(records: list[dict[str, Any]]) -> list[Command]:
    out = []
    for i, r in enumerate(records):
        ct = _COMMAND_TYPES.get(r["command_type"])
        if ct is None:
            raise ValueError(f"command {i}: unknown command type {r['command_type']}")
        out.append(Command(ct, r["attributes"]))
    return out


def executions_page_to_record(page: ListWorkflowExecutionsResponse) -> dict[str, Any]:
    return {"executions": [_flat(e) for e in page.executions], "next_page_token": page.next_page_token}


def executions_page_from_record(r: dict[str, Any]) -> ListWorkflowExecutionsResponse:
    return ListWorkflowExecutionsResponse(
        [WorkflowExecutionInfo(**e) for e in r["executions"]], r["next_page_token"]
    )
