"""SchemaRegistry: single-object encoding, fingerprints, versions and resolution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from cadenza.schemas import SchemaError, SchemaRegistry
from cadenza.schemas.registry import MAGIC, schema_fingerprint

PING_V1: dict[str, Any] = {
    "type": "record",
    "name": "Ping",
    "namespace": "io.cadenza.v1",
    "fields": [{"name": "seq", "type": "long", "default": 0}],
}
PING_V2: dict[str, Any] = {
    **PING_V1,
    "fields": [
        *PING_V1["fields"],
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
    ],
}


@pytest.fixture
def registry() -> SchemaRegistry:
    reg = SchemaRegistry()
    reg.register(PING_V1, version=1)
    reg.register(PING_V2, version=2)
    return reg


def test_fingerprint_is_crc64_avro_little_endian() -> None:
    # Avro spec test vector: CRC-64-AVRO("null") = 0x63dd24e7cc258f8a, little-endian on the wire.
    assert schema_fingerprint("null") == (0x63DD24E7CC258F8A).to_bytes(8, "little")
    canonical = to_parsing_canonical_form(PING_V1)
    assert schema_fingerprint(PING_V1).hex() == fingerprint(canonical, "CRC-64-AVRO")


def test_encode_writes_latest_version_header(registry: SchemaRegistry) -> None:
    data = registry.encode("io.cadenza.v1.Ping", {"seq": 3, "note": "hi"})
    assert data[:2] == MAGIC
    assert data[2:10] == registry.get("io.cadenza.v1.Ping", 2).fingerprint
    assert registry.decode(data) == ("io.cadenza.v1.Ping", {"seq": 3, "note": "hi", "tags": []})


def test_old_version_resolves_to_latest_with_defaults(registry: SchemaRegistry) -> None:
    old = registry.encode("io.cadenza.v1.Ping", {"seq": 9}, version=1)
    assert registry.writer_of(old).version == 1
    assert registry.decode(old) == ("io.cadenza.v1.Ping", {"seq": 9, "note": None, "tags": []})
    assert registry.decode(old, reader_schema_name="io.cadenza.v1.Ping")[1]["tags"] == []


def test_resolution_into_an_unrelated_reader_is_refused(registry: SchemaRegistry) -> None:
    registry.register({"type": "record", "name": "io.cadenza.v1.Pong", "fields": []})
    data = registry.encode("io.cadenza.v1.Ping", {"seq": 1})
    with pytest.raises(SchemaError, match=r"cannot decode .*Ping v2.* into .*Pong"):
        registry.decode(data, reader_schema_name="io.cadenza.v1.Pong")


def test_unknown_fields_are_refused_and_missing_ones_defaulted(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaError, match=r"cannot encode io.cadenza.v1.Ping v2.*surprise"):
        registry.encode("io.cadenza.v1.Ping", {"seq": 1, "surprise": True})
    assert registry.decode(registry.encode("io.cadenza.v1.Ping", {}))[1] == {
        "seq": 0,
        "note": None,
        "tags": [],
    }


def test_errors_name_the_problem(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaError, match=r"unknown schema 'Nope'; known: io.cadenza.v1.Ping"):
        registry.encode("Nope", {})
    with pytest.raises(SchemaError, match="has no version 7"):
        registry.get("io.cadenza.v1.Ping", 7)
    with pytest.raises(SchemaError, match=r"unknown schema fingerprint 0x0{16}; known: .*Ping v1"):
        registry.decode(MAGIC + bytes(8))
    with pytest.raises(SchemaError, match="marker is 0x0000"):
        registry.decode(bytes(12))
    with pytest.raises(SchemaError, match="need 10 bytes, got 4"):
        registry.decode(MAGIC + b"\x00\x00")
    data = registry.encode("io.cadenza.v1.Ping", {"seq": 2**40})
    with pytest.raises(SchemaError, match="truncated"):
        registry.decode(data[:-1])
    with pytest.raises(SchemaError, match="2 trailing bytes"):
        registry.decode(data + b"\x00\x00")


def test_versions_are_never_reused(registry: SchemaRegistry) -> None:
    assert registry.register(PING_V2) is registry.get("io.cadenza.v1.Ping", 2)  # idempotent
    changed = {**PING_V1, "fields": [{"name": "seq", "type": "int", "default": 0}]}
    with pytest.raises(SchemaError, match="v1 is already registered"):
        registry.register(changed, version=1)
    assert registry.register(changed).version == 3  # no version given: the next one


def test_register_from_file_with_named_references(tmp_path: Path) -> None:
    (tmp_path / "io.cadenza.v1.Inner.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Inner",
                "namespace": "io.cadenza.v1",
                "fields": [{"name": "x", "type": "int", "default": 0}],
            }
        )
    )
    outer = tmp_path / "io.cadenza.v1.Outer.avsc"
    outer.write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Outer",
                "namespace": "io.cadenza.v1",
                "cadenza.schema_version": 4,
                "fields": [{"name": "inner", "type": "Inner"}],
            }
        )
    )
    registry = SchemaRegistry()
    entry = registry.register(outer)
    assert (entry.name, entry.version) == ("io.cadenza.v1.Outer", 4)
    data = registry.encode("io.cadenza.v1.Outer", {"inner": {"x": 5}})
    assert registry.decode(data) == ("io.cadenza.v1.Outer", {"inner": {"x": 5}})
    assert [e.name for e in registry.register_directory(tmp_path)] == [
        "io.cadenza.v1.Inner",
        "io.cadenza.v1.Outer",
    ]


def test_bad_schemas_are_refused(tmp_path: Path) -> None:
    registry = SchemaRegistry()
    with pytest.raises(SchemaError, match="invalid schema"):
        registry.register({"type": "record", "name": "Bad", "fields": [{"name": "a", "type": "nope"}]})
    with pytest.raises(SchemaError, match="only named schemas"):
        registry.register({"type": "array", "items": "int"})
    with pytest.raises(SchemaError, match="cannot load schema"):
        registry.register(tmp_path / "missing.avsc")
