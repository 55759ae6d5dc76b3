"""Messages that gained fields keep their released versions: a client that leaves the new fields
unset writes the older version (a server that predates them reads it), and a server reads a
message of either version, the older one with the new fields' defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadenza.schemas import api
from cadenza.schemas.api import convert as cv
from cadenza.schemas.codec import default_registry
from cadenza.schemas.registry import schema_fingerprint
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
