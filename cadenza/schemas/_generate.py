"""Generate the history Avro schemas (``avro/*.avsc``) from ``EVENT_FIELDS``.

The field table in ``events.py`` is the single source of truth; the ``.avsc`` files are committed so
that other languages and tools can read them, and a test fails when they drift from the table.

Two kinds of output:

* ``avro/<fullname>.avsc``: one file per named type, referring to the others by name (the layout
  fastavro's ``load_schema`` and most Avro tooling resolve). Always rewritten to match the table.
* ``avro/released/<Name>.v<N>.avsc``: a self-contained snapshot of ``HistoryEventBatch`` as released
  in schema version N. Stored history nodes carry the fingerprint of the schema that wrote them, so
  every released snapshot must stay readable forever: snapshots are written once and never changed.
  Changing the table therefore means bumping ``SCHEMA_VERSION`` (and only adding fields with defaults).

Run ``python -m cadenza.schemas._generate`` to rewrite, ``--check`` to only verify.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cadenza.schemas.events import EVENT_FIELDS, EventType

NAMESPACE = "io.cadenza.v1"
SCHEMA_VERSION = 4
"""Version of the history schemas; bump when ``EVENT_FIELDS`` or the shared records change."""
VERSION_PROPERTY = "cadenza.schema_version"
"""Extra schema attribute carrying the version; not part of the Parsing Canonical Form."""

AVRO_DIR = Path(__file__).with_name("avro")
RELEASED_DIR = AVRO_DIR / "released"
BATCH_NAME = "HistoryEventBatch"

Schema = Any  # JSON-shaped Avro schema (dict, list or str)


def record_name(event_type: EventType) -> str:
    """Short name of the attribute record for ``event_type``, e.g. ``TimerFiredEventAttributes``."""
    return f"{event_type.pascal_name}EventAttributes"


def full_name(short: str) -> str:
    return f"{NAMESPACE}.{short}"


def _payloads() -> Schema:
    return {"type": "array", "items": "Payload"}


# Type code -> (Avro type, default). Named types are referenced by short name; both the per-file
# layout and the inlined snapshot resolve them inside NAMESPACE.
def _field_type(code: str) -> tuple[Schema, Any]:
    table: dict[str, tuple[Schema, Any]] = {
        "s": ("string", ""),
        "l": ("long", 0),
        "i": ("int", 0),
        "b": ("boolean", False),
        "d": ("double", 0.0),
        "P": (["null", _payloads()], None),
        "p1": ("Payload", {"metadata": {}, "data": ""}),
        "F": (["null", "Failure"], None),
        "R": (["null", "RetryPolicy"], None),
        "X": (["null", "WorkflowExecution"], None),
        "M": ({"type": "map", "values": "Payload"}, {}),
        "MP": ({"type": "map", "values": _payloads()}, {}),
        "S?": (["null", "string"], None),
        "L?": (["null", "long"], None),
    }
    try:
        return table[code]
    except KeyError:
        raise ValueError(f"unknown field type code {code!r}") from None


def _record(name: str, doc: str, fields: dict[str, str]) -> dict[str, Any]:
    out_fields = []
    for field_name, code in fields.items():
        avro_type, default = _field_type(code)
        out_fields.append({"name": field_name, "type": avro_type, "default": default})
    return {
        "type": "record",
        "name": name,
        "namespace": NAMESPACE,
        "doc": doc,
        VERSION_PROPERTY: SCHEMA_VERSION,
        "fields": out_fields,
    }


def shared_records() -> list[dict[str, Any]]:
    """Payload, Failure, RetryPolicy, WorkflowExecution, in dependency order."""
    payload = {
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
    failure = _record(
        "Failure",
        "An error as recorded in history; cause chains to the error that led to it.",
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
            # Version 3: an application error's requested retry delay and its category.
            "next_retry_delay_ms": "L?",
            "category": "i",
        },
    )
    retry = _record(
        "RetryPolicy",
        "How an activity or workflow is retried; 0 means the server default.",
        {
            "initial_interval_ms": "l",
            "backoff_coefficient": "d",
            "maximum_interval_ms": "l",
            "maximum_attempts": "i",
        },
    )
    retry["fields"].append(
        {"name": "non_retryable_error_types", "type": {"type": "array", "items": "string"}, "default": []}
    )
    execution = _record(
        "WorkflowExecution", "Identifies one run of a workflow.", {"workflow_id": "s", "run_id": "s"}
    )
    return [payload, failure, retry, execution]


def attribute_records() -> list[dict[str, Any]]:
    """One record per event type, in event type order (the union branch order)."""
    return [
        _record(record_name(et), f"Attributes of a {et.pascal_name} event.", EVENT_FIELDS[et])
        for et in sorted(EVENT_FIELDS)
    ]


def envelope_records() -> list[dict[str, Any]]:
    """``HistoryEvent`` and ``HistoryEventBatch`` (what history nodes store)."""
    event = {
        "type": "record",
        "name": "HistoryEvent",
        "namespace": NAMESPACE,
        "doc": "One history entry; attributes holds the record matching event_type.",
        VERSION_PROPERTY: SCHEMA_VERSION,
        "fields": [
            {"name": "event_id", "type": "long", "default": 0},
            {"name": "event_time", "type": "long", "default": 0},
            {"name": "event_type", "type": "int", "default": 0},
            {"name": "version", "type": "long", "default": 0},
            {"name": "task_id", "type": "long", "default": 0},
            # No default: the attributes field exists in every version, and a union default would
            # have to be a full record of the first branch.
            {"name": "attributes", "type": [record_name(et) for et in sorted(EVENT_FIELDS)]},
        ],
    }
    batch = {
        "type": "record",
        "name": BATCH_NAME,
        "namespace": NAMESPACE,
        "doc": "A run of consecutive history events, as stored in one history node.",
        VERSION_PROPERTY: SCHEMA_VERSION,
        "fields": [{"name": "events", "type": {"type": "array", "items": "HistoryEvent"}, "default": []}],
    }
    return [event, batch]


def all_records() -> list[dict[str, Any]]:
    return shared_records() + attribute_records() + envelope_records()


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


def batch_schema(records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The self-contained ``HistoryEventBatch`` schema built from ``records`` (default: current)."""
    records = all_records() if records is None else records
    defs = {r["name"]: r for r in records}
    inlined: dict[str, Any] = _inline(BATCH_NAME, defs, set())
    return inlined


def _dump(schema: Schema) -> str:
    return json.dumps(schema, indent=2) + "\n"


def expected_files() -> dict[Path, str]:
    """Every generated file and its content (released snapshot for the current version included)."""
    files = {AVRO_DIR / f"{full_name(r['name'])}.avsc": _dump(r) for r in all_records()}
    files[released_path(BATCH_NAME, SCHEMA_VERSION)] = _dump(batch_schema())
    return files


def released_path(name: str, version: int) -> Path:
    return RELEASED_DIR / f"{name}.v{version}.avsc"


def check() -> list[str]:
    """Problems with the files on disk, empty when they match the table."""
    problems = []
    expected = expected_files()
    for path, content in expected.items():
        if not path.exists():
            problems.append(f"missing {path.name}")
        elif path.read_text() != content:
            if path.parent == RELEASED_DIR:
                problems.append(
                    f"{path.name} is released and differs from the table: bump SCHEMA_VERSION "
                    "instead of changing a released schema"
                )
            else:
                problems.append(f"out of date: {path.name}")
    for path in AVRO_DIR.glob("*.avsc"):
        if path not in expected:
            problems.append(f"stale file (no longer generated): {path.name}")
    return problems


def write() -> list[Path]:
    """Rewrite the per-type files; write the current version's snapshot only if absent."""
    written = []
    for path in AVRO_DIR.glob("*.avsc"):
        path.unlink()  # drop files for types that no longer exist
    for path, content in expected_files().items():
        if path.parent == RELEASED_DIR and path.exists():
            if path.read_text() != content:
                raise SystemExit(
                    f"{path.name} is released; bump SCHEMA_VERSION in {Path(__file__).name} instead"
                )
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="verify only; exit 1 if out of date")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    written = write()
    print(f"wrote {len(written)} files under {AVRO_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
