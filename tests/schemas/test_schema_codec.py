"""encode_events/decode_events: round trips, defaults, old versions, and refusing bad data."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from cadenza.schemas import EventType, HistoryEvent, SchemaError, decode_events, encode_events
from cadenza.schemas._generate import SCHEMA_VERSION
from cadenza.schemas.codec import load_default_registry
from cadenza.schemas.registry import MAGIC, SchemaRegistry

from .make_fixtures import (
    FIXTURES,
    events_from_json,
    full_events,
    payload,
    typical_events,
)

ZEROS: tuple[Any, ...] = (None, "", 0, False, 0.0, {}, [], b"")


def assert_resolved(decoded: Any, expected: Any, where: str = "") -> None:
    """``decoded`` equals ``expected`` on every key ``expected`` has; other keys hold defaults.

    Data written before a field existed decodes with that field's default, so this is what any
    schema version later than the writer's must produce.
    """
    if isinstance(expected, dict) and isinstance(decoded, dict):
        for key, value in expected.items():
            assert key in decoded, f"{where}.{key} missing"
            assert_resolved(decoded[key], value, f"{where}.{key}")
        for key in decoded.keys() - expected.keys():
            assert decoded[key] in ZEROS, f"{where}.{key} = {decoded[key]!r} is not a default"
    elif isinstance(expected, list) and isinstance(decoded, list):
        assert len(decoded) == len(expected), where
        for i, (d, e) in enumerate(zip(decoded, expected, strict=True)):
            assert_resolved(d, e, f"{where}[{i}]")
    else:
        assert decoded == expected, where


def assert_events_resolved(decoded: list[HistoryEvent], expected: list[HistoryEvent]) -> None:
    assert len(decoded) == len(expected)
    for d, e in zip(decoded, expected, strict=True):
        assert type(d.event_type) is EventType
        assert (d.event_id, d.event_time, d.event_type, d.version, d.task_id) == (
            e.event_id,
            e.event_time,
            e.event_type,
            e.version,
            e.task_id,
        )
        assert_resolved(d.attributes, e.attributes, f"event {e.event_id}")


@pytest.mark.parametrize("event", full_events(), ids=lambda e: e.event_type.name)
def test_round_trip_every_event_type_fully_populated(event: HistoryEvent) -> None:
    assert decode_events(encode_events([event])) == [event]


def test_round_trip_batch_of_all_types_and_empty_batch() -> None:
    events = full_events()
    assert decode_events(encode_events(events)) == events
    assert decode_events(encode_events([])) == []


def test_nested_failure_payload_maps_and_retry_policy_survive() -> None:
    started = next(e for e in full_events() if e.event_type == EventType.WORKFLOW_EXECUTION_STARTED)
    attrs = decode_events(encode_events([started]))[0].attributes
    assert attrs["continued_failure"]["cause"]["message"] == "cause of continued_failure"
    assert attrs["continued_failure"]["cause"]["cause"] is None
    assert attrs["memo"]["k1"] == payload(1)
    assert attrs["retry_policy"]["non_retryable_error_types"] == ["ValueError", "KeyError"]
    marker = next(e for e in full_events() if e.event_type == EventType.MARKER_RECORDED)
    assert decode_events(encode_events([marker]))[0].attributes["details"]["k2"] == []


def test_missing_attributes_take_defaults() -> None:
    event = HistoryEvent(1, 5, EventType.ACTIVITY_TASK_SCHEDULED, attributes={"activity_id": "a"})
    attrs = decode_events(encode_events([event]))[0].attributes
    assert attrs == {
        "activity_id": "a",
        "activity_type": "",
        "task_queue": "",
        "header": {},
        "input": None,
        "schedule_to_close_timeout_ms": 0,
        "schedule_to_start_timeout_ms": 0,
        "start_to_close_timeout_ms": 0,
        "heartbeat_timeout_ms": 0,
        "workflow_task_completed_event_id": 0,
        "retry_policy": None,
    }


def test_plain_int_event_type_is_accepted_and_comes_back_as_enum() -> None:
    event = HistoryEvent(1, 5, 18, attributes={"timer_id": "t"})  # type: ignore[arg-type]
    (decoded,) = decode_events(encode_events([event]))
    assert decoded.event_type is EventType.TIMER_FIRED


def test_encode_does_not_mutate_caller_attributes() -> None:
    events = full_events()
    before = copy.deepcopy(events)
    encode_events(events)
    assert events == before


def test_unknown_attribute_field_is_refused_with_event_type_and_field() -> None:
    events = typical_events()
    events[3].attributes["bogus_field"] = 1
    with pytest.raises(SchemaError, match=r"WORKFLOW_TASK_COMPLETED \(event 4\).*'bogus_field'"):
        encode_events(events)


def test_unknown_nested_field_is_refused() -> None:
    events = typical_events()
    events[7].attributes["failure"]["cause"]["extra"] = "x"
    with pytest.raises(SchemaError, match=r"ACTIVITY_TASK_FAILED \(event 8\).*extra"):
        encode_events(events)


def test_wrong_value_type_is_refused() -> None:
    event = HistoryEvent(1, 5, EventType.TIMER_FIRED, attributes={"started_event_id": "seven"})
    with pytest.raises(SchemaError, match="TIMER_FIRED"):
        encode_events([event])


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(SchemaError, match="unknown event type 99"):
        encode_events([HistoryEvent(1, 5, 99)])  # type: ignore[arg-type]


def test_header_names_the_current_schema() -> None:
    data = encode_events(typical_events())
    writer = load_default_registry().writer_of(data)
    assert data[:2] == MAGIC
    assert (writer.name, writer.version) == ("io.cadenza.v1.HistoryEventBatch", SCHEMA_VERSION)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "truncated single-object header"),
        (b"\xc3\x01\x00", "truncated single-object header"),
        (b"not avro at all", "bad marker|marker is 0x6e6f"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x00", r"unknown schema fingerprint 0xffffffffffffffff; known: .*v1"),
    ],
)
def test_garbage_is_refused_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        decode_events(data)


def test_truncated_and_padded_bodies_are_refused() -> None:
    data = encode_events(typical_events())
    for cut in (11, len(data) // 2, len(data) - 1):
        with pytest.raises(SchemaError, match=r"truncated|cannot decode"):
            decode_events(data[:cut])
    with pytest.raises(SchemaError, match="trailing bytes"):
        decode_events(data + b"\x00")


def test_other_schema_message_is_not_a_history_batch() -> None:
    registry = load_default_registry()
    registry.register({"type": "record", "name": "io.cadenza.v1.Ping", "fields": []})
    with pytest.raises(SchemaError, match=r"expected a io.cadenza.v1.HistoryEventBatch"):
        decode_events(registry.encode("io.cadenza.v1.Ping", {}), registry=registry)


# Fixtures: every released version's bytes keep decoding into the current shape.


def _fixture(name: str) -> tuple[bytes, list[HistoryEvent]]:
    return (FIXTURES / f"{name}.bin").read_bytes(), events_from_json((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in Path(FIXTURES).glob("history_v*.bin") if p.stem != "history_v0")
)
def test_released_version_fixtures_decode(name: str) -> None:
    data, expected = _fixture(name)
    assert_events_resolved(decode_events(data), expected)


def test_fixtures_exist_for_the_current_version() -> None:
    assert (FIXTURES / f"history_v{SCHEMA_VERSION}_all_types.bin").exists()
    _, expected = _fixture(f"history_v{SCHEMA_VERSION}_all_types")
    assert {e.event_type for e in expected} == set(EventType)


def test_older_version_resolves_into_current_schema_with_defaults() -> None:
    data, expected = _fixture("history_v0")
    registry: SchemaRegistry = load_default_registry()
    v0 = registry.register(FIXTURES / "history_v0.avsc")
    assert v0.version == 0 and registry.writer_of(data) is v0
    decoded = decode_events(data, registry=registry)
    assert_events_resolved(decoded, expected)
    # Fields the v0 writer did not have arrive with their defaults.
    assert decoded[0].attributes["retry_policy"] is None
    assert decoded[0].attributes["memo"] == {}
    assert decoded[1].attributes["header"] == {} and decoded[1].attributes["heartbeat_timeout_ms"] == 0
    assert decoded[2].attributes["failure"]["cause"]["details"] is None
    # Without v0 registered, the bytes are refused rather than misread.
    with pytest.raises(SchemaError, match="unknown schema fingerprint"):
        decode_events(data)


def test_encoding_is_stable_for_the_current_version() -> None:
    # The current version's fixtures were written by this writer; same events, same bytes.
    prefix = FIXTURES / f"history_v{SCHEMA_VERSION}"
    assert encode_events(full_events()) == Path(f"{prefix}_all_types.bin").read_bytes()
    assert encode_events(typical_events()) == Path(f"{prefix}_typical.bin").read_bytes()


@pytest.mark.parametrize(
    "events", [full_events(), typical_events(), []], ids=["all_types", "typical", "empty"]
)
def test_compiled_writer_writes_what_fastavro_writes(events: list[HistoryEvent]) -> None:
    # The compiled writer must take these itself (no fallback) and agree byte for byte.
    from cadenza.schemas import codec

    assert codec._write_batch(events) == codec._encode_with_fastavro(events)


def test_remembered_event_encodings_give_the_same_batches() -> None:
    # Written events keep their encoding; a later batch (a worker's history) of remembered and new
    # events, in any grouping, is byte for byte what encoding them afresh gives.
    events = full_events()
    fresh = encode_events(events)
    half = len(events) // 2
    encode_events(events[:half], remember=True)
    assert all(e.encoded is not None for e in events[:half])
    assert all(e.encoded is None for e in events[half:])
    assert encode_events(events) == fresh
    assert encode_events(events, remember=True) == fresh
    assert encode_events(events) == fresh
    assert decode_events(fresh) == events


def test_values_the_compiled_writer_does_not_take_are_written_by_fastavro() -> None:
    # A tuple for a list, an int out of range: fastavro decides (the same bytes or the same error).
    from cadenza.schemas import codec

    event = full_events()[0]
    for field, value in [("input", (payload("x"),)), ("attempt", 1 << 40)]:
        odd = copy.deepcopy(event)
        odd.attributes[field] = value
        try:
            expected: bytes | type[Exception] = codec._encode_with_fastavro([odd])
        except SchemaError:
            expected = SchemaError
        if expected is SchemaError:
            with pytest.raises(SchemaError):
                encode_events([odd])
        else:
            assert encode_events([odd]) == expected
