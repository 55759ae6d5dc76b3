"""Generate the frontend API's Avro schemas (``*.avsc`` beside this file) from one table.

Every gRPC call of ``cadenza.api.v1.WorkflowService`` carries one request and one response message,
each a single-object encoded Avro record (``io.cadenza.api.v1.<Name>``). The table below is the
source of truth; the generated files are committed, self-contained (each inlines the named types it
uses), so other languages can read them, and a test fails when they drift from the table.

History events inside responses are *not* re-described here: they travel as ``bytes`` holding an
``io.cadenza.v1.HistoryEventBatch`` written by ``encode_events``, so they keep the history schema and
its fingerprint. Command attributes are typed per command type from the history field table.

Changing a message: only add fields with defaults, bump ``SCHEMA_VERSION``, and copy the message's
previous file to ``released/<fullname>.v<old version>.avsc`` (never changed again). Both ends know
every released version: a reader resolves an older writer's message with the new fields' defaults,
and a writer uses the oldest version that holds every field it sets to something other than its
default (``cadenza.schemas.api.encode``), so a client that leaves the new fields unset still talks
to a server that predates them. Run ``python -m cadenza.schemas.api._generate`` to rewrite,
``--check`` to verify.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cadenza.schemas.events import COMMAND_FIELD_TYPES, COMMAND_FIELDS, EVENT_FIELDS, CommandType

NAMESPACE = "io.cadenza.api.v1"
SCHEMA_VERSION = 5
VERSION_PROPERTY = "cadenza.schema_version"
API_DIR = Path(__file__).parent

Schema = Any

# Type codes. The first block matches ``cadenza.schemas._generate`` (history); the rest are API-only.
_TYPES: dict[str, tuple[Schema, Any]] = {
    "s": ("string", ""),
    "l": ("long", 0),
    "i": ("int", 0),
    "b": ("boolean", False),
    "d": ("double", 0.0),
    "P": (["null", {"type": "array", "items": "Payload"}], None),
    "F": (["null", "Failure"], None),
    "R": (["null", "RetryPolicy"], None),
    "X": (["null", "WorkflowExecution"], None),
    "M": ({"type": "map", "values": "Payload"}, {}),
    "MP": ({"type": "map", "values": {"type": "array", "items": "Payload"}}, {}),
    "S?": (["null", "string"], None),
    "L?": (["null", "long"], None),
    # API-only
    "B": ("bytes", ""),
    "B?": (["null", "bytes"], None),
    "E": ("WorkflowExecution", {"workflow_id": "", "run_id": ""}),
    "MS": ({"type": "map", "values": "string"}, {}),
    "AS": ({"type": "array", "items": "string"}, []),
    "NS": ("NamespaceInfo", None),
    "NSL": ({"type": "array", "items": "NamespaceInfo"}, []),
    "PAL": ({"type": "array", "items": "PendingActivity"}, []),
    "CL": ({"type": "array", "items": "Command"}, []),
    "Q?": (["null", "WorkflowTaskQuery"], None),
    "UL": ({"type": "array", "items": "UpdateRequest"}, []),
    "WT?": (["null", "WorkflowTask"], None),
    "AT?": (["null", "ActivityTask"], None),
    "ATL": ({"type": "array", "items": "ActivityTask"}, []),
    "VL": ({"type": "array", "items": "WorkflowExecutionInfo"}, []),
    "ML": ({"type": "map", "values": "long"}, {}),
    "LL": ({"type": "array", "items": "long"}, []),
    "RBL": ({"type": "array", "items": "RawHistoryBatch"}, []),
    "PIL": ({"type": "array", "items": "PollerInfo"}, []),
    "CML": ({"type": "array", "items": "ClusterMember"}, []),
}

# Fields a command carries that its event spells differently (the event has the execution record).
_COMMAND_ONLY_FIELDS = {"workflow_id": "s", "run_id": "s", "retry_policy": "R", "cron_schedule": "S?"}

# Named helper records (not messages on their own).
TYPES: dict[str, dict[str, str]] = {
    "WorkflowExecution": {"workflow_id": "s", "run_id": "s"},
    "RawHistoryBatch": {
        "first_event_id": "l",
        "next_event_id": "l",
        "version_history": "LL",
        "events": "B",
    },
    "NamespaceInfo": {
        "name": "s",
        "id": "s",
        "description": "s",
        "owner_email": "s",
        "retention_days": "i",
        "state": "s",
        "is_global": "b",
        "clusters": "AS",
        "active_cluster": "s",
        "failover_version": "l",
        "data": "MS",
        "config_version": "l",
        "failover_history": "AS",
        # Version 3: archival state and URI per kind, as the anchors' namespace config has them.
        "history_archival_state": "s",
        "history_archival_uri": "s",
        "visibility_archival_state": "s",
        "visibility_archival_uri": "s",
    },
    "PendingActivity": {
        "activity_id": "s",
        "activity_type": "s",
        "state": "s",
        "attempt": "i",
        "scheduled_time": "l",
        "last_started_time": "l",
        "last_heartbeat_time": "l",
        "heartbeat_details": "P",
        "last_failure": "F",
    },
    # Version 5: the querying client's header.
    "WorkflowTaskQuery": {"query_id": "s", "query_type": "s", "query_args": "P", "header": "M"},
    "PollerInfo": {"identity": "s", "last_access_time": "l", "sticky_task_queue": "s"},
    # Version 5: cluster membership (admin).
    "ClusterMember": {
        "role": "s",
        "host_id": "s",
        "rpc_address": "s",
        "session_start": "l",
        "last_heartbeat": "l",
        "expiry": "l",
    },
    "UpdateRequest": {"update_id": "s", "name": "s", "input": "P", "header": "M", "identity": "s"},
    "WorkflowTask": {
        "task_token": "B",
        "workflow_execution": "E",
        "workflow_type": "s",
        "namespace": "s",
        "attempt": "i",
        "started_event_id": "l",
        "history": "B",
        "query": "Q?",
        "updates": "UL",
    },
    "ActivityTask": {
        "task_token": "B",
        "workflow_execution": "E",
        "workflow_type": "s",
        "namespace": "s",
        "activity_id": "s",
        "activity_type": "s",
        "input": "P",
        "header": "M",
        "attempt": "i",
        "scheduled_time": "l",
        "current_attempt_scheduled_time": "l",
        "started_time": "l",
        "schedule_to_close_timeout_ms": "l",
        "start_to_close_timeout_ms": "l",
        "heartbeat_timeout_ms": "l",
        "heartbeat_details": "P",
        "task_queue": "s",
    },
    "WorkflowExecutionInfo": {
        "workflow_id": "s",
        "run_id": "s",
        "workflow_type": "s",
        "status": "s",
        "start_time": "l",
        "execution_time": "l",
        "close_time": "l",
        "history_length": "l",
        "task_queue": "s",
        "search_attributes": "M",
        "memo": "M",
    },
}

_START_FIELDS: dict[str, str] = {
    "namespace": "s",
    "workflow_id": "s",
    "workflow_type": "s",
    "task_queue": "s",
    "input": "P",
    "workflow_execution_timeout_ms": "l",
    "workflow_run_timeout_ms": "l",
    "workflow_task_timeout_ms": "l",
    "request_id": "s",
    "identity": "s",
    "workflow_id_reuse_policy": "s",
    "retry_policy": "R",
    "cron_schedule": "s",
    "memo": "M",
    "search_attributes": "M",
    "header": "M",
    "signal_name": "s",
    "signal_input": "P",
    # Version 3: Temporal's id conflict policy and start delay.
    "workflow_id_conflict_policy": "s",
    "workflow_start_delay_ms": "l",
    # Version 4: eager workflow start.
    "request_eager_execution": "b",
}
"""The fields of a start, shared by the plain start and the start that waits."""

_COMPLETE_AND_POLL_FIELDS: dict[str, str] = {
    "task_token": "B",
    "commands": "CL",
    "identity": "s",
    "namespace": "s",
    "task_queue": "s",
    "timeout_s": "d",
}
"""A workflow task's completion that also polls ``task_queue`` for the next one."""

_UPDATE_FIELDS: dict[str, str] = {
    "namespace": "s",
    "execution": "E",
    "update_id": "s",
    "name": "s",
    "input": "P",
    "header": "M",
    "identity": "s",
    "wait_stage": "s",
    "timeout_s": "d",
}
_UPDATE_RESPONSE_FIELDS: dict[str, str] = {
    "update_id": "s",
    "update_run_id": "s",
    "stage": "s",
    "result": "P",
    "failure": "F",
}

# gRPC method -> (request fields, response fields). Message names are <Method>Request/Response.
_BY_ID_FIELDS = {"namespace": "s", "workflow_id": "s", "run_id": "s", "activity_id": "s"}

METHODS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "StartWorkflowExecution": (_START_FIELDS, {"run_id": "s", "started": "b", "eager_workflow_task": "WT?"}),
    # A start that then waits for the run to close (a client's execute_workflow), up to ``wait_s``;
    # ``history`` holds the close event if it came in time. One round trip instead of two; a method
    # of its own so an older server answers UNIMPLEMENTED and the client starts, then waits.
    "StartWorkflowExecutionAndWait": (
        {**_START_FIELDS, "wait_s": "d"},
        {"run_id": "s", "started": "b", "history": "B"},
    ),
    "SignalWorkflowExecution": (
        {
            "namespace": "s",
            "execution": "E",
            "signal_name": "s",
            "input": "P",
            "identity": "s",
            "request_id": "s",
            # Version 5: the sender's header, written into WorkflowExecutionSignaled.
            "header": "M",
        },
        {},
    ),
    # A workflow update (Temporal's UpdateWorkflowExecution): waits up to ``timeout_s`` for
    # ``wait_stage``; ``stage`` says what was reached.
    "UpdateWorkflowExecution": (_UPDATE_FIELDS, _UPDATE_RESPONSE_FIELDS),
    # Update-with-start (Temporal's ExecuteMultiOperation with a start and an update).
    "UpdateWithStartWorkflowExecution": (
        {**{f"start_{k}": v for k, v in _START_FIELDS.items()}, **_UPDATE_FIELDS},
        {"run_id": "s", "started": "b", **_UPDATE_RESPONSE_FIELDS},
    ),
    "QueryWorkflow": (
        # Version 5: the querying client's header.
        {"namespace": "s", "execution": "E", "query_type": "s", "query_args": "P", "header": "M"},
        {"result": "P"},
    ),
    "RequestCancelWorkflowExecution": (
        {"namespace": "s", "execution": "E", "identity": "s", "request_id": "s"},
        {},
    ),
    "TerminateWorkflowExecution": (
        {"namespace": "s", "execution": "E", "reason": "s", "details": "P", "identity": "s"},
        {},
    ),
    "DescribeWorkflowExecution": (
        {"namespace": "s", "execution": "E"},
        {
            "workflow_id": "s",
            "run_id": "s",
            "workflow_type": "s",
            "task_queue": "s",
            "status": "s",
            "start_time": "l",
            "close_time": "l",
            "history_length": "l",
            "history_size_bytes": "l",
            "memo": "M",
            "search_attributes": "M",
            "pending_activities": "PAL",
            "pending_timers": "i",
            "attempt": "i",
            "version_histories": "AS",
            # Version 3: what temporalio's description shows besides.
            "execution_time": "l",
            "parent_workflow_id": "s",
            "parent_run_id": "s",
        },
    ),
    "GetWorkflowExecutionHistory": (
        {
            "namespace": "s",
            "execution": "E",
            "next_page_token": "B?",
            "maximum_page_size": "i",
            "wait_new_event": "b",
            "close_event_only": "b",
            "timeout_s": "d",
            "branch_id": "s",
        },
        {"history": "B", "next_page_token": "B?", "run_id": "s"},
    ),
    "PollWorkflowTaskQueue": (
        {"namespace": "s", "task_queue": "s", "identity": "s", "timeout_s": "d"},
        {"task": "WT?"},
    ),
    "RespondWorkflowTaskCompleted": (
        {"task_token": "B", "commands": "CL", "identity": "s", "namespace": "s"},
        {},
    ),
    # A completion that also polls: the worker asks for its next workflow task of ``task_queue`` in
    # the call that completes the last one (waiting up to ``timeout_s``), saving one round trip per
    # workflow task. A separate method rather than new fields, so an older server answers
    # UNIMPLEMENTED (and the client falls back) instead of refusing an unknown message version.
    "RespondWorkflowTaskCompletedAndPoll": (_COMPLETE_AND_POLL_FIELDS, {"task": "WT?"}),
    # The completion with eager activity dispatch (and, with ``task_queue`` set, the next poll):
    # ``eager_activity_ids`` names scheduled activities the worker will run itself; the response
    # carries those started for it, so they cost no activity poll. A method of its own for the same
    # reason as the one above.
    "RespondWorkflowTaskCompletedEager": (
        {**_COMPLETE_AND_POLL_FIELDS, "eager_activity_ids": "AS"},
        {"task": "WT?", "activity_tasks": "ATL"},
    ),
    # The completion with sticky execution (the anchors' StickyExecutionAttributes): as the eager
    # one, and the worker keeps the run cached and polls ``sticky_task_queue``, where the run's next
    # workflow tasks go with only the new events. A method of its own for the same reason.
    "RespondWorkflowTaskCompletedSticky": (
        {
            **_COMPLETE_AND_POLL_FIELDS,
            "eager_activity_ids": "AS",
            "sticky_task_queue": "s",
            "sticky_schedule_to_start_timeout_ms": "l",
        },
        {"task": "WT?", "activity_tasks": "ATL"},
    ),
    # The worker that had a run cached let it go (evicted it, or shut down): the run's next
    # workflow task goes to the normal queue at once (the anchors' ResetStickyTaskQueue).
    "ResetStickyTaskQueue": ({"namespace": "s", "execution": "E"}, {}),
    # The pollers a task queue had recently and its backlog (Temporal's DescribeTaskQueue), for
    # one task type: "workflow" (also what "" means) or "activity".
    "DescribeTaskQueue": (
        {"namespace": "s", "task_queue": "s", "task_queue_type": "s"},
        {"pollers": "PIL", "backlog_count_hint": "l"},
    ),
    "RespondWorkflowTaskFailed": (
        {"task_token": "B", "cause": "s", "failure": "F", "identity": "s", "namespace": "s"},
        {},
    ),
    "RespondQueryTaskCompleted": (
        {"namespace": "s", "query_id": "s", "result": "P", "error_message": "s"},
        {},
    ),
    "PollActivityTaskQueue": (
        {"namespace": "s", "task_queue": "s", "identity": "s", "timeout_s": "d"},
        {"task": "AT?"},
    ),
    "RecordActivityTaskHeartbeat": (
        {"task_token": "B", "details": "P", "identity": "s"},
        {"cancel_requested": "b"},
    ),
    "RespondActivityTaskCompleted": ({"task_token": "B", "result": "P", "identity": "s"}, {}),
    "RespondActivityTaskFailed": ({"task_token": "B", "failure": "F", "identity": "s"}, {}),
    "RespondActivityTaskCanceled": ({"task_token": "B", "details": "P", "identity": "s"}, {}),
    # The same four by workflow id and activity id, for an activity completed asynchronously by
    # something that knows the activity but not its token (the anchors' *ById calls).
    "RecordActivityTaskHeartbeatById": (
        {**_BY_ID_FIELDS, "details": "P", "identity": "s"},
        {"cancel_requested": "b"},
    ),
    "RespondActivityTaskCompletedById": ({**_BY_ID_FIELDS, "result": "P", "identity": "s"}, {}),
    "RespondActivityTaskFailedById": ({**_BY_ID_FIELDS, "failure": "F", "identity": "s"}, {}),
    "RespondActivityTaskCanceledById": ({**_BY_ID_FIELDS, "details": "P", "identity": "s"}, {}),
    "RegisterNamespace": ({"namespace": "NS"}, {}),
    "DescribeNamespace": ({"name": "s"}, {"namespace": "NS"}),
    "ListNamespaces": ({}, {"namespaces": "NSL"}),
    "UpdateNamespace": ({"namespace": "NS"}, {}),
    "ListWorkflowExecutions": (
        {"namespace": "s", "query": "s", "page_size": "i", "next_page_token": "B?"},
        {"executions": "VL", "next_page_token": "B?"},
    ),
    "ScanWorkflowExecutions": (
        {"namespace": "s", "query": "s", "page_size": "i", "next_page_token": "B?"},
        {"executions": "VL", "next_page_token": "B?"},
    ),
    # Version 3: what retention archived (needs archival with enableRead on the server).
    "GetArchivedWorkflowHistory": (
        {"namespace": "s", "workflow_id": "s", "run_id": "s"},
        {"history": "B"},
    ),
    "ListArchivedWorkflowExecutions": (
        {"namespace": "s", "query": "s", "page_size": "i", "next_page_token": "B?"},
        {"executions": "VL", "next_page_token": "B?"},
    ),
    "CountWorkflowExecutions": (
        {"namespace": "s", "query": "s", "group_by_status": "b"},
        {"count": "l", "groups": "ML"},
    ),
    "ResetWorkflowExecution": (
        {
            "namespace": "s",
            "execution": "E",
            "reset_type": "s",
            "event_id": "l",
            "reason": "s",
            "identity": "s",
        },
        {"run_id": "s"},
    ),
    "GetSearchAttributes": ({}, {"attributes": "MS"}),
    "AddSearchAttributes": ({"attributes": "MS"}, {}),
    "DescribeCluster": ({}, {"document": "s"}),
    # The live members of the cluster's membership (``role`` empty: every role), as the store has
    # them (the anchors' ``admin membership list_db``).
    "ListClusterMembers": ({"role": "s"}, {"members": "CML"}),
    "ReplicationDLQ": ({"source_cluster": "s", "action": "s"}, {"document": "s"}),
    "FailoverNamespace": (
        {"name": "s", "target_cluster": "s", "graceful": "b", "timeout_s": "d"},
        {"namespace": "NS", "graceful": "b", "seconds": "d", "message": "s"},
    ),
    "GetRawHistory": (
        {
            "namespace_id": "s",
            "workflow_id": "s",
            "run_id": "s",
            "start_event_id": "l",
            "end_event_id": "l",
            "end_event_version": "l",
        },
        {"batches": "RBL"},
    ),
    "GetClusterInfo": (
        {},
        {
            "server_version": "s",
            "cluster_name": "s",
            "num_history_shards": "i",
            "persistence": "s",
            "capabilities": "AS",
        },
    ),
}


def command_attribute_name(command_type: CommandType) -> str:
    pascal = "".join(part.capitalize() for part in command_type.name.split("_"))
    return f"{pascal}CommandAttributes"


def command_fields(command_type: CommandType) -> dict[str, str]:
    """A command's attribute fields, typed like the same-named fields of the event it produces."""
    event_fields = EVENT_FIELDS[COMMAND_FIELD_TYPES[command_type]]
    return {f: event_fields.get(f) or _COMMAND_ONLY_FIELDS[f] for f in COMMAND_FIELDS[command_type]}


def _record(name: str, doc: str, fields: dict[str, str]) -> dict[str, Any]:
    out = []
    for field_name, code in fields.items():
        avro_type, default = _TYPES[code]
        entry: dict[str, Any] = {"name": field_name, "type": avro_type}
        if default is not None or (isinstance(avro_type, list) and avro_type[0] == "null"):
            entry["default"] = default
        out.append(entry)
    return {
        "type": "record",
        "name": name,
        "namespace": NAMESPACE,
        "doc": doc,
        VERSION_PROPERTY: SCHEMA_VERSION,
        "fields": out,
    }


def named_types() -> dict[str, dict[str, Any]]:
    """Every helper record by short name: the history's shared shapes, API helpers, commands."""
    defs: dict[str, dict[str, Any]] = {}
    defs["Payload"] = {
        "type": "record",
        "name": "Payload",
        "namespace": NAMESPACE,
        "doc": "An opaque value produced by the SDK's data converter; metadata names its encoding.",
        VERSION_PROPERTY: SCHEMA_VERSION,
        "fields": [
            {"name": "metadata", "type": {"type": "map", "values": "bytes"}, "default": {}},
            {"name": "data", "type": "bytes", "default": ""},
        ],
    }
    defs["Failure"] = _record(
        "Failure",
        "An error; cause chains to the error that led to it.",
        {
            "message": "s",
            "source": "s",
            "stack_trace": "s",
            "failure_type": "s",
            "application_type": "S?",
            "non_retryable": "b",
            "details": "P",
            "timeout_type": "S?",
            "cause": "F",
            # Version 2: an application error's requested retry delay and its category.
            "next_retry_delay_ms": "L?",
            "category": "i",
        },
    )
    retry = _record(
        "RetryPolicy",
        "How an activity or workflow is retried; 0 means the default.",
        {
            "initial_interval_ms": "l",
            "backoff_coefficient": "d",
            "maximum_interval_ms": "l",
            "maximum_attempts": "i",
            "non_retryable_error_types": "AS",
        },
    )
    defs["RetryPolicy"] = retry
    for name, fields in TYPES.items():
        defs[name] = _record(name, f"{name}, as the frontend API carries it.", fields)
    branches = []
    for ct in sorted(CommandType):
        rec = command_attribute_name(ct)
        defs[rec] = _record(rec, f"Attributes of a {ct.name} command.", command_fields(ct))
        branches.append(rec)
    defs["Command"] = {
        "type": "record",
        "name": "Command",
        "namespace": NAMESPACE,
        "doc": "What workflow code asks the engine to do; attributes is the record for command_type.",
        VERSION_PROPERTY: SCHEMA_VERSION,
        "fields": [{"name": "command_type", "type": "int"}, {"name": "attributes", "type": branches}],
    }
    return defs


def message_names() -> list[str]:
    return [f"{m}{kind}" for m in METHODS for kind in ("Request", "Response")]


def messages() -> dict[str, dict[str, Any]]:
    out = {}
    for method, (request, response) in METHODS.items():
        out[f"{method}Request"] = _record(f"{method}Request", f"Request of {method}.", request)
        out[f"{method}Response"] = _record(f"{method}Response", f"Response of {method}.", response)
    return out


def _inline(schema: Schema, defs: dict[str, dict[str, Any]], seen: set[str]) -> Schema:
    """Replace the first reference to each named type by its definition (Avro requires it)."""
    if isinstance(schema, str):
        if schema in defs and schema not in seen:
            seen.add(schema)
            return _inline(defs[schema], defs, seen)
        return schema
    if isinstance(schema, list):
        return [_inline(branch, defs, seen) for branch in schema]
    out = dict(schema)
    if out.get("type") == "record":
        seen.add(out["name"])
        out["fields"] = [{**f, "type": _inline(f["type"], defs, seen)} for f in out["fields"]]
    elif out.get("type") == "array":
        out["items"] = _inline(out["items"], defs, seen)
    elif out.get("type") == "map":
        out["values"] = _inline(out["values"], defs, seen)
    return out


def expected_files() -> dict[Path, str]:
    defs = named_types()
    return {
        API_DIR / f"{NAMESPACE}.{name}.avsc": json.dumps(_inline(schema, defs, set()), indent=1) + "\n"
        for name, schema in messages().items()
    }


def check() -> list[str]:
    expected = expected_files()
    problems = []
    for path, content in expected.items():
        if not path.exists():
            problems.append(f"missing {path.name}")
        elif path.read_text() != content:
            problems.append(f"out of date: {path.name}")
    problems += [f"stale file: {p.name}" for p in API_DIR.glob("*.avsc") if p not in expected]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the frontend API's Avro schemas.")
    parser.add_argument("--check", action="store_true", help="verify only; exit 1 if out of date")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for path in API_DIR.glob("*.avsc"):
        path.unlink()
    files = expected_files()
    for path, content in files.items():
        path.write_text(content)
    print(f"wrote {len(files)} files under {API_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
