"""Avro single-object encoding with a registry of schemas keyed by fingerprint.

Every message is ``C3 01`` + the writer schema's 8-byte little-endian CRC-64-AVRO fingerprint (of its
Parsing Canonical Form) + the Avro binary body. The fingerprint lets a reader find the exact schema
that wrote the bytes, so data written by an older schema version resolves into the current one using
Avro's resolution rules (fields added since get their defaults). Old versions therefore stay
registered for as long as data written with them may exist.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, load_schema, parse_schema, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER_SIZE = 10  # marker + 8-byte fingerprint
VERSION_PROPERTY = "cadenza.schema_version"

# What fastavro raises on data that does not fit a schema; it has no common base class for them.
AVRO_DATA_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    EOFError,
    UnicodeDecodeError,
    fastavro.read.SchemaResolutionError,
)


class SchemaError(ValueError):
    """Data does not fit a schema, or a schema is unknown or malformed."""


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """One version of a named schema."""

    name: str
    """Full Avro name, e.g. ``io.cadenza.v1.HistoryEventBatch``."""
    version: int
    fingerprint: bytes
    """CRC-64-AVRO of the Parsing Canonical Form, little-endian (as on the wire)."""
    parsed: Any
    """The schema as parsed by fastavro (self-contained: its own named types)."""

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint

    def __str__(self) -> str:
        return f"{self.name} v{self.version} (0x{self.fingerprint.hex()})"


def schema_fingerprint(schema: Any) -> bytes:
    """The 8 wire bytes identifying ``schema`` (JSON-shaped or parsed)."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _full_name(schema: Any) -> str:
    name = schema.get("name") if isinstance(schema, Mapping) else None
    if not isinstance(name, str):
        raise SchemaError("only named schemas (records, enums, fixed) can be registered")
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


class SchemaRegistry:
    """Schemas by name and version, and by fingerprint for decoding.

    ``register`` is idempotent for an identical schema. A name keeps every version ever
    registered; ``encode`` writes the latest unless told otherwise and ``decode`` reads into the
    latest version of the reader's name.
    """

    def __init__(self) -> None:
        self._by_fingerprint: dict[bytes, RegisteredSchema] = {}
        self._by_name: dict[str, dict[int, RegisteredSchema]] = {}

    def register(
        self,
        schema: str | os.PathLike[str] | Mapping[str, Any],
        *,
        name: str | None = None,
        version: int | None = None,
    ) -> RegisteredSchema:
        """Register a schema given as a dict or a path to an ``.avsc`` file.

        A file may refer to named types defined in sibling files called ``<fullname>.avsc``. The
        version defaults to the schema's ``cadenza.schema_version`` attribute, else to one more than
        the latest registered version of the name. Registering a different schema under an existing
        name and version raises ``SchemaError``: a version, once used, is never reused.
        """
        raw: Any
        if isinstance(schema, Mapping):
            raw = dict(schema)
            declared = raw.get(VERSION_PROPERTY)
            try:
                parsed = parse_schema(raw, named_schemas={})
            except Exception as exc:  # fastavro raises several unrelated types for bad schemas
                raise SchemaError(f"invalid schema: {exc}") from exc
        else:
            path = Path(schema)
            try:
                declared = json.loads(path.read_text()).get(VERSION_PROPERTY)
                # load_schema resolves references to <fullname>.avsc files next to this one.
                parsed = load_schema(str(path))
            except (OSError, ValueError) as exc:
                raise SchemaError(f"cannot load schema {path}: {exc}") from exc
            except Exception as exc:
                raise SchemaError(f"invalid schema {path}: {exc}") from exc
        full = name or _full_name(parsed)
        fp = schema_fingerprint(parsed)
        existing = self._by_fingerprint.get(fp)
        if existing is not None and existing.name == full:
            return existing
        versions = self._by_name.setdefault(full, {})
        if version is None:
            version = int(declared) if declared is not None else max(versions, default=0) + 1
        clash = versions.get(version)
        if clash is not None:
            raise SchemaError(f"{full} v{version} is already registered with a different schema ({clash})")
        entry = RegisteredSchema(full, version, fp, parsed)
        versions[version] = entry
        self._by_fingerprint[fp] = entry
        return entry

    def register_directory(self, directory: str | os.PathLike[str]) -> list[RegisteredSchema]:
        """Register every ``*.avsc`` in ``directory`` (e.g. a directory of released snapshots)."""
        return [self.register(path) for path in sorted(Path(directory).glob("*.avsc"))]

    def get(self, name: str, version: int | None = None) -> RegisteredSchema:
        """The given version of ``name``, or its latest."""
        versions = self._by_name.get(name)
        if not versions:
            raise SchemaError(f"unknown schema {name!r}; known: {', '.join(sorted(self._by_name)) or 'none'}")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise SchemaError(f"{name} has no version {version}; known: {sorted(versions)}") from None

    def by_fingerprint(self, fp: bytes) -> RegisteredSchema:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            known = ", ".join(str(s) for s in self._by_fingerprint.values()) or "none"
            raise SchemaError(f"unknown schema fingerprint 0x{fp.hex()}; known: {known}") from None

    def schemas(self) -> list[RegisteredSchema]:
        return list(self._by_fingerprint.values())

    def writer_of(self, data: bytes) -> RegisteredSchema:
        """The schema that wrote single-object encoded ``data`` (checks the header only)."""
        if len(data) < HEADER_SIZE:
            raise SchemaError(f"truncated single-object header: need {HEADER_SIZE} bytes, got {len(data)}")
        if data[:2] != MAGIC:
            raise SchemaError(
                f"not Avro single-object encoded: marker is 0x{bytes(data[:2]).hex()}, expected 0xc301"
            )
        return self.by_fingerprint(bytes(data[2:HEADER_SIZE]))

    def encode(self, schema_name: str, record: Any, *, version: int | None = None) -> bytes:
        """Single-object encode ``record`` with the latest (or given) version of ``schema_name``.

        Missing fields take their schema default; fields the schema does not know raise
        ``SchemaError`` rather than being dropped.
        """
        entry = self.get(schema_name, version)
        out = io.BytesIO()
        out.write(entry.header)
        try:
            fastavro.schemaless_writer(out, entry.parsed, record, strict_allow_default=True)
        except AVRO_DATA_ERRORS as exc:
            raise SchemaError(f"cannot encode {entry}: {exc}") from exc
        return out.getvalue()

    def decode(self, data: bytes, reader_schema_name: str | None = None) -> tuple[str, Any]:
        """Decode single-object encoded ``data``; returns ``(schema_name, record)``.

        The record is resolved into the latest version of ``reader_schema_name`` (default: the
        writer's name), so data from an older version gains the defaults of fields added since.
        """
        writer = self.writer_of(data)
        reader = self.get(reader_schema_name or writer.name)
        return reader.name, read_body(data, writer, reader)


def read_body(
    data: bytes, writer: RegisteredSchema, reader: RegisteredSchema | None = None, **options: Any
) -> Any:
    """Read the Avro body after the header, resolving ``writer`` into ``reader`` if they differ.

    ``options`` are passed to ``fastavro.schemaless_reader``. Trailing bytes are an error: they
    would mean the bytes were not written by ``writer``.
    """
    stream = io.BytesIO(data)
    stream.seek(HEADER_SIZE)
    resolve = reader is not None and reader.fingerprint != writer.fingerprint
    try:
        record = fastavro.schemaless_reader(
            stream, writer.parsed, reader.parsed if resolve and reader else None, **options
        )
    except EOFError as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise SchemaError(
            f"truncated {writer} body: data ends after {len(data) - HEADER_SIZE} bytes{detail}"
        ) from exc
    except AVRO_DATA_ERRORS as exc:
        target = f" into {reader}" if resolve else ""
        raise SchemaError(f"cannot decode {writer} body{target}: {type(exc).__name__}: {exc}") from exc
    extra = len(data) - stream.tell()
    if extra:
        raise SchemaError(f"{extra} trailing bytes after a {writer} record")
    return record
