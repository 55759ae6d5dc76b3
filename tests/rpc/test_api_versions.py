"""Messages that gained fields keep their released versions: a client that leaves the new fields
unset writes the older version (a server that predates them reads it), and a server reads a
message of either version, the older one with the new fields' defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastavro import parse_schema

from cadenza.schemas import api
from cadenza.schemas.api import _fill
from cadenza.schemas.api import convert as cv
from cadenza.schemas.codec import default_registry
from cadenza.schemas.registry import read_body, schema_fingerprint
from cadenza.schemas.service import StartWorkflowRequest

NAME = "io.cadenza.api.v1.StartWorkflowExecutionRequest"


def _released(name: str, version: int) -> Path:
    return api.RELEASED_DIR / f"{name}.v{version}.avsc"


def _start(**fields: object) -> dict[str, object]:
    req = StartWorkflowRequest("default", "wf", "Type", "queue", request_id="r-1", **fields)  # type: ignore[arg-type]
    return cv.start_request_to_record(req)


def _writer_version(data: bytes) -> int:
    return default_registry().writer_of(data).version


def test_a_start_without_the_new_options_is_written_in_the_released_version() -> None:
    old = json.loads(_released(NAME, 2).read_text())
    data = api.encode("StartWorkflowExecutionRequest", _start())
    assert _writer_version(data) == 2
    assert data[2:10] == schema_fingerprint(old)  # what a server of that version knows
    assert api.decode("StartWorkflowExecutionRequest", data)["workflow_id_conflict_policy"] == ""


@pytest.mark.parametrize(
    ("fields", "version"),
    [
        ({"workflow_id_conflict_policy": "USE_EXISTING"}, 3),
        ({"workflow_start_delay_ms": 5_000}, 3),
        # Eager start came with version 4, the message's newest shape (later versions of the API
        # left it unchanged, so it is written with the current schema, the same fingerprint).
        ({"request_eager_execution": True}, None),
        ({"request_eager_execution": True, "workflow_start_delay_ms": 5_000}, None),
    ],
)
def test_a_start_with_a_new_option_is_written_in_the_oldest_version_that_has_it(
    fields: dict[str, object], version: int | None
) -> None:
    data = api.encode("StartWorkflowExecutionRequest", _start(**fields))
    current = api.schema("StartWorkflowExecutionRequest")
    assert _writer_version(data) == (version or current.version) <= current.version
    decoded = api.decode("StartWorkflowExecutionRequest", data)
    assert {k: decoded[k] for k in fields} == fields


def test_every_released_message_is_an_older_version_of_a_current_one() -> None:
    for path in api.RELEASED_DIR.glob("*.avsc"):
        entry = default_registry().register(path)
        current = api.schema(entry.name.rsplit(".", 1)[-1])
        assert entry.version < current.version, path.name
        assert entry.fingerprint != current.fingerprint, f"{path.name} is the current schema"
        old_fields = {f["name"] for f in entry.parsed["fields"]}
        new_fields = {f["name"]: f for f in current.parsed["fields"]}
        assert old_fields <= set(new_fields), f"{path.name}: a field was removed"
        assert all("default" in new_fields[n] for n in set(new_fields) - old_fields), path.name


def test_a_description_without_the_new_fields_is_readable_by_older_clients() -> None:
    record = {
        "workflow_id": "wf",
        "run_id": "r",
        "workflow_type": "T",
        "task_queue": "q",
        "status": "RUNNING",
        "start_time": 1,
        "close_time": 0,
        "history_length": 2,
        "history_size_bytes": 10,
    }
    assert _writer_version(api.encode("DescribeWorkflowExecutionResponse", record)) == 2
    child = {**record, "parent_workflow_id": "parent"}
    data = api.encode("DescribeWorkflowExecutionResponse", child)
    assert _writer_version(data) > 2
    assert api.decode("DescribeWorkflowExecutionResponse", data)["parent_workflow_id"] == "parent"


def test_an_older_start_reads_as_the_same_record_as_the_current_one() -> None:
    record = _start()
    older = api.encode("StartWorkflowExecutionRequest", record)
    current = default_registry().encode(NAME, record)
    assert _writer_version(older) < _writer_version(current)
    assert api.decode("StartWorkflowExecutionRequest", older) == api.decode(
        "StartWorkflowExecutionRequest", current
    )


def test_every_released_version_is_read_without_schema_resolution() -> None:
    """Each released version differs from the current one by added fields only, so it is read as
    written and filled (``_fill``): no message of an older peer pays for Avro's resolution."""
    for path in api.RELEASED_DIR.glob("*.avsc"):
        assert default_registry().register(path).fingerprint in api._FILLS, path.name


def _both_ways(message: str, data: bytes) -> tuple[object, object]:
    """The record as the fill reads it, and as Avro's schema resolution reads it."""
    writer = default_registry().writer_of(data)
    return api.decode(message, data), read_body(data, writer, api.schema(message))


def test_a_workflow_task_of_the_version_before_query_headers_reads_as_resolution_reads_it() -> None:
    name = "io.cadenza.api.v1.PollWorkflowTaskQueueResponse"
    task = {
        "task_token": b"t",
        "workflow_execution": {"workflow_id": "wf", "run_id": "r"},
        "workflow_type": "T",
        "namespace": "default",
        "attempt": 1,
        "started_event_id": 3,
        "history": b"",
        "query": {"query_id": "q-1", "query_type": "count", "query_args": None},
        "updates": [{"update_id": "u", "name": "n", "input": None, "header": {}, "identity": "i"}],
    }
    data = default_registry().encode(name, {"task": task}, version=4)
    filled, resolved = _both_ways("PollWorkflowTaskQueueResponse", data)
    assert filled == resolved
    assert filled["task"]["query"]["header"] == {}  # type: ignore[index]


def test_a_description_with_nested_failures_of_version_2_reads_as_resolution_reads_it() -> None:
    """Failure gained fields in version 3 and nests in itself (``cause``): the fill follows it."""
    inner = {
        "message": "inner",
        "source": "",
        "stack_trace": "",
        "failure_type": "",
        "application_type": None,
        "non_retryable": False,
        "details": None,
        "timeout_type": None,
        "cause": None,
    }
    failure = {**inner, "message": "outer", "cause": inner}
    activity = {"activity_id": "1", "activity_type": "A", "attempt": 2, "last_failure": failure}
    record = {"workflow_id": "wf", "run_id": "r", "status": "RUNNING", "pending_activities": [activity]}
    data = default_registry().encode("io.cadenza.api.v1.DescribeWorkflowExecutionResponse", record, version=2)
    filled, resolved = _both_ways("DescribeWorkflowExecutionResponse", data)
    assert filled == resolved
    cause = filled["pending_activities"][0]["last_failure"]["cause"]  # type: ignore[index]
    assert cause["category"] == 0 and cause["next_retry_delay_ms"] is None


def test_a_change_the_fill_cannot_make_is_left_to_resolution() -> None:
    def record(*fields: dict[str, object]) -> dict[str, object]:
        return parse_schema({"type": "record", "name": "M", "fields": list(fields)})

    old = record({"name": "a", "type": "string"}, {"name": "b", "type": "long"})
    with pytest.raises(_fill.Unsupported, match="lost b"):
        _fill.plan(old, record({"name": "a", "type": "string"}))
    with pytest.raises(_fill.Unsupported, match="became"):
        _fill.plan(old, record({"name": "a", "type": "string"}, {"name": "b", "type": "string"}))
    with pytest.raises(_fill.Unsupported, match="without a default"):
        _fill.plan(old, record(*old["fields"], {"name": "c", "type": "int"}))  # type: ignore[arg-type]
    with_c = record(*old["fields"], {"name": "c", "type": "int", "default": 7})  # type: ignore[arg-type]
    added = _fill.plan(old, with_c)
    assert added is not None and added.added == [("c", 7)]
    assert _fill.plan(old, old) is None
