"""Valid inputs for every fuzz target, made at run time from the current schemas and samples.

The fuzzer mutates these, so it starts from bytes the decoders accept (a correct single-object header,
a body that fills every field, a query that parses) instead of spending its time rediscovering the
Avro framing. API requests are generated from their schemas: one record with every field at its
default and a few with every field set, each union and enum taking a different branch per variant.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cadenza.engine.bus.messages import (
    NamespaceOperation,
    NamespaceReplication,
    ReplicationMessage,
    ReplicationTaskType,
    SyncActivity,
    VersionHistoryItem,
    VisibilityMessage,
    VisibilityMessageType,
    encode_replication,
    encode_visibility,
)
from cadenza.engine.history.workflow_tasks import encode_token
from cadenza.schemas import api
from cadenza.schemas.codec import decode_events, encode_events

ROOT = Path(__file__).resolve().parents[2]
HISTORY_FIXTURES = ROOT / "tests" / "schemas" / "fixtures"
BUS_FIXTURES = ROOT / "tests" / "bus" / "fixtures"
EXAMPLE_CONFIGS = ROOT / "cadenza" / "ops" / "config"

WORKFLOW_TOKEN = encode_token("ns-id", "video-v-42", "run-1", 2, 1, 3, "req-1")
ACTIVITY_TOKEN = encode_token("ns-id", "video-v-42", "run-1", 5, 2)
PAYLOAD = {"metadata": {"encoding": b"json/plain"}, "data": b'"v-42"'}

QUERIES = [
    "",
    "WorkflowType = 'Transcode'",
    "WorkflowType = 'Transcode' AND ExecutionStatus = 'Running' AND StartTime > '2026-01-01T00:00:00Z' "
    "ORDER BY StartTime DESC",
    "(WorkflowId STARTS_WITH 'video-' OR TaskQueue IN ('video', \"records\")) AND HistoryLength >= 10",
    "CloseTime IS NULL AND ExecutionTime BETWEEN '2026-01-01T00:00:00+02:00' AND '2026-12-31T23:59:59.5Z'",
    "CustomerId != 'c-9' AND Priority NOT BETWEEN -3 AND 7 ORDER BY Priority ASC",
    "Score < 1.5e3 AND IsPremium = true AND Description = 'cleaned video' ORDER BY Score DESC",
    "Tags IN ('hd', '4k') AND DueDate <= '2026-11-01t00:00:00z' AND `Tags` IS NOT NULL ORDER BY DueDate",
    "ExecutionStatus IN ('Completed', 'Failed') ORDER BY IsPremium DESC",
    "RunId > 'a''b' ORDER BY CustomerId",
]
"""Queries over every operator, every literal form and every type (the custom attributes are
the ones ``targets.CUSTOM_ATTRIBUTES`` registers)."""

PAGE_TOKENS = [
    base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode())
    for body in (
        {"v": 1, "o": "StartTime", "d": True, "s": 1_700_000_000_000_000, "r": "run-1"},
        {"v": 1, "o": "RunId", "d": False, "s": "run-1", "r": "run-1"},
        {"v": 1, "o": "Priority", "d": False, "s": None, "r": "run-1"},
    )
]
"""Tokens as ``encode_page_token`` writes them: a list by StartTime DESC, a scan (RunId ASC), a
list by a custom attribute resumed among the runs without it."""


# -- API requests ------------------------------------------------------------------------------------


def _sample(schema: Any, named: dict[str, Any], variant: int, field: str, depth: int = 0) -> Any:
    """A value of ``schema``: defaults for variant 0, every field set otherwise (recursive
    records, such as a failure's cause, stop at a few levels)."""
    if isinstance(schema, str):
        if schema in named:
            return _sample(named[schema], named, variant, field, depth)
        return _primitive(schema, variant, field)
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if variant == 0 or not branches or (depth > 4 and "null" in schema):
            return None
        branch = branches[variant % len(branches)]
        value = _sample(branch, named, variant, field, depth + 1)
        name = branch.get("name") if isinstance(branch, dict) else None
        return (name, value) if name and len(branches) > 1 else value
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        return {f["name"]: _field_sample(f, named, variant, depth + 1) for f in schema["fields"]}
    if kind == "enum":
        named[schema["name"]] = schema
        return schema["symbols"][variant % len(schema["symbols"])]
    if kind == "fixed":
        named[schema["name"]] = schema
        return bytes(schema["size"])
    if kind == "array":
        if variant == 0:
            return []
        items = schema["items"]
        if isinstance(items, list) and len([b for b in items if b != "null"]) > 1:
            # One element per branch of a union (every command type in one completion).
            return [_sample(items, named, v, field, depth + 1) for v in range(1, len(items) + 1)]
        return [_sample(items, named, variant, field, depth + 1)]
    if kind == "map":
        return {} if variant == 0 else {"k": _sample(schema["values"], named, variant, field, depth + 1)}
    return _sample(kind, named, variant, field, depth)


def _field_sample(field: dict[str, Any], named: dict[str, Any], variant: int, depth: int) -> Any:
    value = _sample(field["type"], named, variant or 1, field["name"], depth)
    if variant == 0 and "default" in field:
        default = field["default"]
        # JSON defaults of bytes fields are strings; the writer wants bytes.
        return default.encode("latin-1") if isinstance(default, str) and isinstance(value, bytes) else default
    return value


def _primitive(kind: str, variant: int, field: str) -> Any:
    if kind == "null":
        return None
    if kind == "boolean":
        return variant % 2 == 1
    if kind in ("int", "long"):
        return 3 + variant
    if kind in ("float", "double"):
        return 1.5 * variant
    if kind == "bytes":
        if field == "task_token":
            return WORKFLOW_TOKEN if variant % 2 else ACTIVITY_TOKEN
        if field == "next_page_token":
            return PAGE_TOKENS[variant % len(PAGE_TOKENS)]
        return b'"v-42"'
    if field == "query":
        return QUERIES[variant % len(QUERIES)]
    return f"{field}-{variant}"


def request_records(method: str) -> Iterator[dict[str, Any]]:
    parsed = api.schema(f"{method}Request").parsed
    for variant in range(4):
        yield _sample(parsed, {}, variant, "")


def api_request_seeds() -> list[tuple[str, bytes]]:
    """(method, single-object encoded request) for every method and variant."""
    out = []
    for method in api.METHODS:
        for record in request_records(method):
            out.append((method, api.encode(f"{method}Request", record)))
    return out


# -- history batches and bus messages --------------------------------------------------------------


def history_seeds() -> list[bytes]:
    """The released fixtures (every event type in one batch; an older schema version) and each
    event of them alone, re-encoded with the current schema."""
    batches = [path.read_bytes() for path in sorted(HISTORY_FIXTURES.glob("*.bin"))]
    singles = [encode_events([e]) for e in decode_events(batches[-1])]
    return batches + singles


def bus_seeds() -> list[bytes]:
    batch = history_seeds()[0]
    visibility = VisibilityMessage(
        namespace_id="ns-id",
        workflow_id="video-v-42",
        run_id="run-1",
        task_id=12,
        message_type=VisibilityMessageType.UPSERT,
        workflow_type="VideoPipeline",
        start_time=1_700_000_000_000_000,
        execution_time=1_700_000_000_000_000,
        close_time=1_700_000_100_000_000,
        status=2,
        history_length=11,
        task_queue="video",
        search_attributes={"CustomerId": PAYLOAD},
        memo={"note": PAYLOAD},
    )
    history = ReplicationMessage(
        namespace_id="ns-id",
        workflow_id="video-v-42",
        run_id="run-1",
        task_id=13,
        task_type=ReplicationTaskType.HISTORY,
        version_history=[VersionHistoryItem(5, 1), VersionHistoryItem(9, 11)],
        first_event_id=1,
        next_event_id=10,
        events=batch,
        new_run_id="run-2",
        new_run_events=batch,
    )
    activity = ReplicationMessage(
        namespace_id="ns-id",
        workflow_id="video-v-42",
        run_id="run-1",
        task_id=14,
        task_type=ReplicationTaskType.SYNC_ACTIVITY,
        activity=SyncActivity(
            version=11,
            scheduled_event_id=5,
            scheduled_time=1,
            started_event_id=6,
            started_time=2,
            last_heartbeat_time=3,
            details=b"[1]",
            attempt=2,
            last_failure=b"{}",
            last_worker_identity="worker-1",
        ),
    )
    namespace = ReplicationMessage(
        namespace_id="ns-id",
        task_id=15,
        task_type=ReplicationTaskType.NAMESPACE,
        namespace=NamespaceReplication(
            operation=NamespaceOperation.UPDATE,
            id="ns-id",
            name="video",
            description="d",
            owner_email="o@example.com",
            data={"k": "v"},
            retention_days=3,
            active_cluster_name="active",
            clusters=["active", "standby"],
            config_version=2,
            failover_version=11,
            failover_history=["1:0", "11:5"],
        ),
    )
    made = [
        encode_visibility(visibility),
        encode_visibility(VisibilityMessage(namespace_id="n", workflow_id="w", run_id="r", task_id=1)),
        encode_visibility(
            VisibilityMessage(
                namespace_id="n",
                workflow_id="w",
                run_id="r",
                task_id=2,
                message_type=VisibilityMessageType.DELETE,
            )
        ),
        encode_replication(history),
        encode_replication(activity),
        encode_replication(namespace),
    ]
    return made + [path.read_bytes() for path in sorted(BUS_FIXTURES.glob("*.bin"))]


# -- text inputs ---------------------------------------------------------------------------------------


def config_seeds() -> list[tuple[bool, bytes]]:
    """The shipped example server configs and dynamic config files: (is dynamic config, text)."""
    return [
        (path.parent.name == "dynamicconfig", path.read_bytes())
        for path in sorted(EXAMPLE_CONFIGS.rglob("*.yaml"))
    ]


CLI_JSON = [
    '"v-42"',
    '{"video_id": "v-42", "formats": ["h264", "vp9"], "bitrate": 4.5e6, "hdr": true, "parent": null}',
    '[1, -2, 3.25, 1e3, "\\u00e9\\ud83d\\ude00"]',
    '{"nested": [[{"a": [{}]}]]}',
]


def cli_json_seeds() -> list[bytes]:
    """``--input`` values and ``--memo KEY=JSON`` pairs (the selector byte picks which)."""
    return [bytes([0]) + v.encode() for v in CLI_JSON] + [bytes([1]) + f"note={v}".encode() for v in CLI_JSON]


def token_seeds() -> list[bytes]:
    return [
        WORKFLOW_TOKEN,
        ACTIVITY_TOKEN,
        json.dumps(["ns-id", "wf", "run", -1, 1, 0]).encode(),
        *PAGE_TOKENS,
    ]


def list_query_seeds() -> list[bytes]:
    """A query, then NUL and a page token when the listing resumes."""
    out = [q.encode() for q in QUERIES]
    out += [QUERIES[2].encode() + b"\x00" + PAGE_TOKENS[0], b"\x00" + PAGE_TOKENS[0]]
    return out
