"""Binary encoding of history: batches of ``HistoryEvent`` as Avro single-object messages.

A history node stores one ``io.cadenza.v1.HistoryEventBatch``. The header names the exact schema
version that wrote it, so nodes written by older versions decode into the current shape (added
fields take their defaults). Released schema versions live in ``avro/released`` and are all
registered in the default registry.

This is on the hot path of every workflow task (a replay decodes the whole history), so the schema is
parsed once and fastavro reads in C. Writes go through a writer compiled from the current schema
(``_compile_batch_writer``): fastavro spent most of a small batch's ~18 µs on per-call set-up and
on finding the attributes union branch, several times per workflow. The compiled writer takes only
values of the exact expected types; anything else (an unknown field, a mistyped value, an int out of
range) is written by fastavro instead, so the bytes and the errors stay fastavro's.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fastavro

from cadenza.schemas.events import EVENT_FIELDS, EventType, HistoryEvent
from cadenza.schemas.registry import (
    AVRO_DATA_ERRORS,
    RegisteredSchema,
    SchemaError,
    SchemaRegistry,
    read_body,
)

NAMESPACE = "io.cadenza.v1"
BATCH_SCHEMA = f"{NAMESPACE}.HistoryEventBatch"
RELEASED_DIR = Path(__file__).with_name("avro") / "released"

# Event type -> full name of its attributes record (the union branch).
_BRANCH: dict[int, str] = {et: f"{NAMESPACE}.{et.pascal_name}EventAttributes" for et in EventType}
_EVENT_TYPES: dict[int, EventType] = {int(et): et for et in EventType}
_FIELDS: dict[int, frozenset[str]] = {et: frozenset(fields) for et, fields in EVENT_FIELDS.items()}
# Nullable complex fields per event type, with the name of their non-null union branch. Given a bare
# value, fastavro picks a union branch by validating the value against each branch (walking whole
# payload lists and records) before writing it; naming the branch skips that and cuts encode time
# by about a fifth on a typical history.
_UNION_BRANCH = {
    "P": "array",
    "F": f"{NAMESPACE}.Failure",
    "R": f"{NAMESPACE}.RetryPolicy",
    "X": f"{NAMESPACE}.WorkflowExecution",
}
_TAGGED: dict[int, tuple[tuple[str, str], ...]] = {
    et: tuple((name, _UNION_BRANCH[code]) for name, code in fields.items() if code in _UNION_BRANCH)
    for et, fields in EVENT_FIELDS.items()
}


def load_default_registry() -> SchemaRegistry:
    """A registry holding every released history schema version."""
    registry = SchemaRegistry()
    registry.register_directory(RELEASED_DIR)
    return registry


_registry = load_default_registry()
_current: RegisteredSchema = _registry.get(BATCH_SCHEMA)
_event_schema: Any = _current.parsed["fields"][0]["type"]["items"]


def default_registry() -> SchemaRegistry:
    """The process-wide registry used by ``encode_events``/``decode_events``.

    Other modules register their own schemas (API and bus messages) here too.
    """
    return _registry


def encode_events(events: Sequence[HistoryEvent], *, remember: bool = False) -> bytes:
    """Encode ``events`` as one single-object encoded ``HistoryEventBatch`` (current version).

    Attribute fields that are absent take the schema default. A key that is not a field of the event
    type raises ``SchemaError`` naming both, rather than being dropped.

    An event's encoding kept in ``HistoryEvent.encoded`` is reused; ``remember`` keeps the encoding
    of each event (for events that will not change any more: written ones).
    """
    try:
        return _write_batch(events, remember)
    except Exception:  # anything the compiled writer does not take: fastavro decides (see above)
        return _encode_with_fastavro(events)


def _encode_with_fastavro(events: Sequence[HistoryEvent]) -> bytes:
    records: list[dict[str, Any]] = []
    append = records.append
    branch, tagged = _BRANCH, _TAGGED
    for e in events:
        attributes = e.attributes
        try:
            name = branch[e.event_type]
            tag = tagged[e.event_type]
        except KeyError:
            raise SchemaError(f"event {e.event_id}: unknown event type {e.event_type!r}") from None
        if tag:
            attributes = _tag_unions(attributes, tag)
        append(
            {
                "event_id": e.event_id,
                "event_time": e.event_time,
                "event_type": e.event_type,
                "version": e.version,
                "task_id": e.task_id,
                "attributes": (name, attributes),
            }
        )
    out = io.BytesIO()
    out.write(_current.header)
    try:
        fastavro.schemaless_writer(out, _current.parsed, {"events": records}, strict_allow_default=True)
    except AVRO_DATA_ERRORS as exc:
        # The batch error does not say which event; find it (slow path, only on failure).
        raise _diagnose(events, exc) from exc
    return out.getvalue()


# -- the compiled writer ---------------------------------------------------------------------------


class _NotTaken(Exception):
    """A value the compiled writer does not write itself."""


_SMALL_VARINTS = [bytes([z]) for z in range(128)]
_pack_double = struct.Struct("<d").pack


def _varint(z: int) -> bytes:
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _long(n: Any) -> bytes:
    if n.__class__ is not int:
        if not isinstance(n, int) or isinstance(n, bool):
            raise _NotTaken
        n = int(n)  # an IntEnum
    if 0 <= n < 64:
        return _SMALL_VARINTS[n << 1]
    if not -(1 << 63) <= n < (1 << 63):
        raise _NotTaken
    return _varint((n << 1) ^ (n >> 63))


def _int(n: Any) -> bytes:
    if n.__class__ is int and 0 <= n < 64:
        return _SMALL_VARINTS[n << 1]
    if not isinstance(n, int) or isinstance(n, bool) or not -(1 << 31) <= n < (1 << 31):
        raise _NotTaken
    return _long(n)


def _py_default(schema: Any, named: dict[str, Any], value: Any) -> Any:
    """A field's JSON default as the value the writer takes (bytes defaults are strings in JSON)."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        return _py_default(schema[0], named, value)
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "bytes":
        return value.encode("latin-1")
    if kind == "record":
        return {
            f["name"]: _py_default(f["type"], named, value.get(f["name"], f.get("default")))
            for f in schema["fields"]
        }
    if kind == "array":
        return [_py_default(schema["items"], named, v) for v in value]
    if kind == "map":
        return {k: _py_default(schema["values"], named, v) for k, v in value.items()}
    return value


class _WriterSource:
    """Python source of one function per record type, writing Avro binary through ``a`` (append)."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.functions: dict[str, str] = {}
        self.constants: dict[str, Any] = {}
        self.lines: list[str] = []

    def const(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def record(self, schema: dict[str, Any]) -> str:
        name = schema["name"]
        self.named.setdefault(name, schema)
        if name in self.functions:
            return self.functions[name]
        fn = self.functions[name] = f"_w{len(self.functions)}"
        fields = self.const(frozenset(f["name"] for f in schema["fields"]))
        body: list[str] = [
            f"def {fn}(d, a):",
            f"    if d.__class__ is not dict or not d.keys() <= {fields}:",
            "        raise _NotTaken",
        ]
        for f in schema["fields"]:
            default = self.const(_py_default(f["type"], self.named, f.get("default")))
            body.append(f"    v = d.get({f['name']!r}, {default})")
            self.value(f["type"], "v", body, 1)
        self.lines.extend(body)
        return fn

    def value(self, schema: Any, v: str, out: list[str], depth: int) -> None:
        pad = "    " * depth
        if isinstance(schema, str) and schema in self.named:
            schema = self.named[schema]
        if isinstance(schema, list):
            if len(schema) != 2 or schema[0] != "null":
                raise SchemaError(f"the compiled writer takes [null, T] unions only, not {schema}")
            out += [f"{pad}if {v} is None:", f"{pad}    a(b'\\x00')", f"{pad}else:", f"{pad}    a(b'\\x02')"]
            self.value(schema[1], v, out, depth + 1)
            return
        kind = schema if isinstance(schema, str) else schema["type"]
        if kind == "long":
            out.append(f"{pad}a(_long({v}))")
        elif kind == "int":
            out.append(f"{pad}a(_int({v}))")
        elif kind == "boolean":
            out += [
                f"{pad}if {v} is True:",
                f"{pad}    a(b'\\x01')",
                f"{pad}elif {v} is False:",
                f"{pad}    a(b'\\x00')",
                f"{pad}else:",
                f"{pad}    raise _NotTaken",
            ]
        elif kind == "double":
            out += [
                f"{pad}if {v}.__class__ is not float:",
                f"{pad}    raise _NotTaken",
                f"{pad}a(_pack_double({v}))",
            ]
        elif kind in ("string", "bytes"):
            cls, b = ("str", f"{v}.encode()") if kind == "string" else ("bytes", v)
            out += [
                f"{pad}if {v}.__class__ is not {cls}:",
                f"{pad}    raise _NotTaken",
                f"{pad}b = {b}",
                f"{pad}a(_long(len(b)))",
                f"{pad}a(b)",
            ]
        elif kind in ("array", "map"):
            item = f"x{depth}"
            cls = "list" if kind == "array" else "dict"
            loop = f"for {item} in {v}:" if kind == "array" else f"for k{depth}, {item} in {v}.items():"
            out += [
                f"{pad}if {v}.__class__ is not {cls}:",
                f"{pad}    raise _NotTaken",
                f"{pad}if {v}:",
                f"{pad}    a(_long(len({v})))",
                f"{pad}    {loop}",
            ]
            if kind == "map":
                self.value("string", f"k{depth}", out, depth + 2)
            self.value(schema["items"] if kind == "array" else schema["values"], item, out, depth + 2)
            out.append(f"{pad}a(b'\\x00')")
        elif kind == "record":
            out.append(f"{pad}{self.record(schema)}({v}, a)")
        else:
            raise SchemaError(f"the compiled writer does not take {kind!r}")


_ENVELOPE = [
    ("event_id", "long"),
    ("event_time", "long"),
    ("event_type", "int"),
    ("version", "long"),
    ("task_id", "long"),
]


def _compile_batch_writer(batch: Any) -> Callable[[Sequence[HistoryEvent], bool], bytes]:
    """A function writing a ``HistoryEventBatch`` exactly as fastavro writes the same value."""
    event = batch["fields"][0]["type"]["items"]
    envelope = [(f["name"], f["type"]) for f in event["fields"][:5]]
    if [f["name"] for f in batch["fields"]] != ["events"] or envelope != _ENVELOPE:
        raise SchemaError("the compiled writer expects the HistoryEventBatch layout it was written for")
    source = _WriterSource()
    # Event type -> (union index as bytes, attributes writer name).
    branches: dict[int, tuple[bytes, str]] = {}
    for index, branch in enumerate(event["fields"][5]["type"]):
        fn = source.record(branch)
        for et, name in _BRANCH.items():
            if name == branch["name"]:
                branches[et] = (_long(index), fn)
    namespace: dict[str, Any] = {
        "_NotTaken": _NotTaken,
        "_long": _long,
        "_int": _int,
        "_pack_double": _pack_double,
        **source.constants,
    }
    exec("\n".join(source.lines), namespace)  # the source is generated above from the schema
    writers = {et: (index, namespace[fn]) for et, (index, fn) in branches.items()}
    header = _current.header

    def write_batch(events: Sequence[HistoryEvent], remember: bool = False) -> bytes:
        out = [header]
        a = out.append
        if events:
            a(_long(len(events)))
            for e in events:
                if e.encoded is not None:
                    a(e.encoded)
                    continue
                start = len(out)
                index, write_attributes = writers[e.event_type]
                a(_long(e.event_id))
                a(_long(e.event_time))
                a(_int(e.event_type))
                a(_long(e.version))
                a(_long(e.task_id))
                a(index)
                write_attributes(e.attributes, a)
                if remember:
                    e.encoded = b"".join(out[start:])
        a(b"\x00")
        return b"".join(out)

    return write_batch


_write_batch = _compile_batch_writer(_current.parsed)


def _tag_unions(attributes: dict[str, Any], tag: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """A copy of ``attributes`` with non-null union values as ``(branch, value)``; never mutates."""
    tagged: dict[str, Any] | None = None
    for name, branch in tag:
        value = attributes.get(name)
        if value is not None:
            if tagged is None:
                tagged = dict(attributes)
            tagged[name] = (branch, value)
    return attributes if tagged is None else tagged


def _diagnose(events: Sequence[HistoryEvent], batch_error: Exception) -> SchemaError:
    for e in events:
        et = EventType(e.event_type)
        unknown = sorted(set(e.attributes) - _FIELDS[et])
        if unknown:
            return SchemaError(
                f"{et.name} (event {e.event_id}) has no attribute field {unknown[0]!r}; "
                f"its fields are: {', '.join(EVENT_FIELDS[et])}"
            )
        attributes = _tag_unions(e.attributes, _TAGGED[et])
        record = {
            "event_id": e.event_id,
            "event_time": e.event_time,
            "event_type": e.event_type,
            "version": e.version,
            "task_id": e.task_id,
            "attributes": (_BRANCH[et], attributes),
        }
        try:
            fastavro.schemaless_writer(io.BytesIO(), _event_schema, record, strict_allow_default=True)
        except AVRO_DATA_ERRORS as exc:
            return SchemaError(f"cannot encode {et.name} (event {e.event_id}): {exc}")
    return SchemaError(f"cannot encode history batch: {batch_error}")


def decode_events(data: bytes, *, registry: SchemaRegistry | None = None) -> list[HistoryEvent]:
    """Decode a ``HistoryEventBatch`` written by any registered version.

    ``event_type`` comes back as ``EventType``; attributes are plain dicts holding every field of the
    current schema (payloads as ``{"metadata": ..., "data": ...}``). ``registry`` defaults to
    ``default_registry()``; pass another to read versions registered only there.
    """
    reg = registry or _registry
    writer = reg.writer_of(data)
    if writer.name != BATCH_SCHEMA:
        raise SchemaError(f"expected a {BATCH_SCHEMA} message, got {writer}")
    reader = _current if registry is None else reg.get(BATCH_SCHEMA)
    batch = read_body(data, writer, reader)
    types = _EVENT_TYPES
    fields = _attribute_fields(reader)
    int_fields = _int_fields(reader)
    events: list[HistoryEvent] = []
    append = events.append
    for e in batch["events"]:
        et = types.get(e["event_type"])
        if et is None:
            raise SchemaError(f"unknown event type {e['event_type']!r} in history batch")
        attributes = e["attributes"]
        # The attributes union names its branch on the wire, independently of event_type: a batch
        # whose two disagree would decode, then fail wherever the event is used or written again.
        if attributes.keys() != fields.get(et):
            raise SchemaError(
                f"event {e['event_id']} is {et.name} but carries the attributes of another event "
                f"type (fields {', '.join(sorted(attributes)) or 'none'})"
            )
        checks = int_fields.get(et)
        if checks is not None:
            _check_ints(attributes, checks, e["event_id"], et)
        append(HistoryEvent(e["event_id"], e["event_time"], et, e["version"], e["task_id"], attributes))
    return events


_INT32 = range(-(2**31), 2**31)
# Per record name: the fields holding an Avro "int" (None) or a record that holds one (its name).
_IntChecks = dict[str, str | None]
_READER_INTS: dict[bytes, dict[int, tuple[_IntChecks, dict[str, _IntChecks]]]] = {}


def _int_fields(reader: RegisteredSchema) -> dict[int, tuple[_IntChecks, dict[str, _IntChecks]]]:
    """Event type -> its attributes' "int" fields (and nested records holding some), with the same for
    every named record. fastavro reads an Avro int as any varint, so a hostile batch could carry a
    value no writer accepts: it would decode, then fail wherever the event is written again."""
    found = _READER_INTS.get(reader.fingerprint)
    if found is not None:
        return found
    records: dict[str, dict[str, Any]] = {}

    def collect(node: Any) -> None:
        if isinstance(node, list):
            for n in node:
                collect(n)
        elif isinstance(node, dict):
            if node.get("type") == "record" and node["name"] not in records:
                records[node["name"]] = node
                for f in node["fields"]:
                    collect(f["type"])
            elif node.get("type") in ("array", "map"):
                collect(node.get("items") or node.get("values"))

    collect(reader.parsed)
    checks: dict[str, _IntChecks] = {}
    for name, record in records.items():
        found_here: _IntChecks = {}
        for f in record["fields"]:
            branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
            for b in branches:
                if b == "int":
                    found_here[f["name"]] = None
                elif isinstance(b, str) and b in records:
                    found_here[f["name"]] = b
                elif isinstance(b, dict) and b.get("type") == "record":
                    found_here[f["name"]] = b["name"]
        checks[name] = found_here

    def holds_ints(name: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            sub is None or (sub not in seen and holds_ints(sub, seen | {name}))
            for sub in checks.get(name, {}).values()
        )

    pruned = {
        name: {k: v for k, v in c.items() if v is None or holds_ints(v, frozenset({name}))}
        for name, c in checks.items()
    }
    event = reader.parsed["fields"][0]["type"]["items"]
    branch_names = {
        b["name"] for b in event["fields"][5]["type"] if isinstance(b, dict) and b.get("type") == "record"
    }
    found = {}
    for et, name in _BRANCH.items():
        short = name.rsplit(".", 1)[-1]
        full = next((n for n in branch_names if n == name or n.rsplit(".", 1)[-1] == short), None)
        key = full if full in pruned else short if short in pruned else None
        if key is not None and pruned[key]:
            found[et] = (pruned[key], pruned)
    _READER_INTS[reader.fingerprint] = found
    return found


def _check_ints(
    value: dict[str, Any], checks: tuple[_IntChecks, dict[str, _IntChecks]], event_id: int, et: EventType
) -> None:
    fields, records = checks
    for name, sub in fields.items():
        v = value.get(name)
        if v is None:
            continue
        if sub is None:
            if v not in _INT32:
                raise SchemaError(f"event {event_id} ({et.name}): {name} = {v} does not fit a 32-bit int")
        elif isinstance(v, dict):
            _check_ints(v, (records.get(sub, {}), records), event_id, et)


_READER_FIELDS: dict[bytes, dict[int, frozenset[str]]] = {}


def _attribute_fields(reader: RegisteredSchema) -> dict[int, frozenset[str]]:
    """Event type -> the attribute field names that ``reader`` decodes it with."""
    found = _READER_FIELDS.get(reader.fingerprint)
    if found is None:
        event = reader.parsed["fields"][0]["type"]["items"]
        by_name = {
            branch["name"]: frozenset(f["name"] for f in branch["fields"])
            for branch in event["fields"][5]["type"]
            if isinstance(branch, dict)
        }
        found = _READER_FIELDS[reader.fingerprint] = {
            et: by_name[name] for et, name in _BRANCH.items() if name in by_name
        }
    return found
