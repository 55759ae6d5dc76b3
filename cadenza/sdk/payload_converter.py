"""Payload converters in temporalio's shape: one ``EncodingPayloadConverter`` per encoding, composed in
order by a ``CompositePayloadConverter``; ``DefaultPayloadConverter`` is null, bytes and JSON.

A user who needs a type of their own on the wire (temporalio's ``custom_converter`` sample) writes an
``EncodingPayloadConverter`` for it, puts it before the defaults in a composite, and hands the class
to ``DataConverter(payload_converter_class=...)`` (or ``dataclasses.replace(default(), ...)``).

A ``Payload`` here is a ``dict`` (``{"metadata": {str: bytes}, "data": bytes}``, what Cadenza stores
and sends) that also answers to temporalio's attribute names (``payload.metadata``, ``payload.data``),
so a converter written for temporalio's protobuf ``Payload`` works unchanged, and what it returns can
go anywhere a payload goes (arguments, results, headers, memos).
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, to_jsonable_python

from cadenza.sdk.exceptions import PayloadDecodeError, PayloadEncodeError

__all__ = [
    "BinaryNullPayloadConverter",
    "BinaryPlainPayloadConverter",
    "CompositePayloadConverter",
    "DefaultPayloadConverter",
    "EncodingPayloadConverter",
    "JSONPlainPayloadConverter",
    "Payload",
    "PayloadConverter",
]

ENCODING_BINARY_NULL = b"binary/null"
ENCODING_BINARY_PLAIN = b"binary/plain"
ENCODING_JSON_PLAIN = b"json/plain"


class Payload(dict[str, Any]):
    """One encoded value: ``metadata`` (``encoding`` names the converter that reads it) and ``data``.
    Constructed as temporalio's ``Payload(metadata={...}, data=b"...")``."""

    def __init__(self, metadata: Mapping[str, bytes] | None = None, data: bytes = b"") -> None:
        super().__init__(metadata=dict(metadata or {}), data=bytes(data))

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Payload:
        """``payload`` (a stored payload dict) as a ``Payload``; one already is, returned as is."""
        if isinstance(payload, Payload):
            return payload
        return cls(payload.get("metadata") or {}, payload.get("data") or b"")

    @property
    def metadata(self) -> dict[str, bytes]:
        return self["metadata"]  # type: ignore[no-any-return]

    @metadata.setter
    def metadata(self, value: Mapping[str, bytes]) -> None:
        self["metadata"] = dict(value)

    @property
    def data(self) -> bytes:
        return self["data"]  # type: ignore[no-any-return]

    @data.setter
    def data(self, value: bytes) -> None:
        self["data"] = bytes(value)

    def __repr__(self) -> str:
        return f"Payload(metadata={self.metadata!r}, data={self.data!r})"


def plain(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A converter's payload as the plain dict Cadenza stores: a ``Payload`` pickles as its class,
    and a run's state holds plain values only (a payload kept there, an activity's input or
    header, would make the state unreadable)."""
    if type(payload) is dict:
        return payload
    return {"metadata": dict(payload.get("metadata") or {}), "data": bytes(payload.get("data") or b"")}


def plain_headers(headers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``headers`` with every payload a plain dict (what interceptors put there may be ``Payload``s)."""
    return {name: plain(p) for name, p in headers.items()}


# -- JSON: shared by the default converter's fast path and JSONPlainPayloadConverter ------------------

# Type hints that need no conversion after json.loads: skipping pydantic for them keeps the
# hot path (one str argument, one str result) at a few microseconds.
_PASSTHROUGH_HINTS: frozenset[Any] = frozenset({Any, object, None, type(None)})
_SCALAR_HINTS: dict[Any, type | tuple[type, ...]] = {
    str: str,
    int: int,
    float: (float, int),
    bool: bool,
    dict: dict,
    list: list,
}


@functools.lru_cache(maxsize=1024)
def _adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


def _json_default(value: Any) -> Any:
    # Called by json.dumps only for values it does not know; pydantic knows dataclasses, models,
    # enums, datetimes, UUIDs, sets, Decimals...
    return to_jsonable_python(value)


def encode_json(value: Any, index: int) -> bytes:
    """``value`` as compact JSON; ``PayloadEncodeError`` naming the argument if it has no JSON form."""
    try:
        data = json.dumps(value, default=_json_default, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, PydanticSerializationError) as err:
        raise PayloadEncodeError(
            f"Cannot encode argument {index} of type {type(value).__qualname__}: {err}",
            index=index,
            value_type=type(value),
        ) from err
    return data.encode()


def decode_json(data: bytes, hint: Any, index: int) -> Any:
    try:
        value = json.loads(data)
    except ValueError as err:
        raise PayloadDecodeError(f"Payload {index} is not valid JSON: {err}") from err
    return shape(value, hint, index)


def shape(value: Any, hint: Any, index: int) -> Any:
    """A decoded JSON value as ``hint`` asks (a dataclass, a model, a datetime...)."""
    try:
        if hint in _PASSTHROUGH_HINTS:
            return value
        scalar = _SCALAR_HINTS.get(hint)
    except TypeError:
        scalar = None  # an unhashable hint, e.g. Annotated with a dict
    if scalar is not None and isinstance(value, scalar) and not (hint is int and isinstance(value, bool)):
        return value
    try:
        try:
            adapter = _adapter(hint)
        except TypeError:
            adapter = TypeAdapter(hint)  # unhashable: cannot be cached
        return adapter.validate_python(value)
    except Exception as err:
        raise PayloadDecodeError(f"Cannot decode payload {index} as {hint!r}: {err}") from err


# -- the converters ---------------------------------------------------------------------------------


class PayloadConverter(ABC):
    """Values to payloads and back (temporalio's ``PayloadConverter``)."""

    @abstractmethod
    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        """Encode ``values``, one payload each."""

    @abstractmethod
    def from_payloads(self, payloads: Sequence[Payload], type_hints: list[Any] | None = None) -> list[Any]:
        """Decode ``payloads``; ``type_hints[i]``, if given, shapes value ``i``."""

    def to_payload(self, value: Any) -> Payload:
        return self.to_payloads([value])[0]

    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        return self.from_payloads([payload], None if type_hint is None else [type_hint])[0]


class EncodingPayloadConverter(ABC):
    """Converts the values it knows to payloads of one ``encoding``, and reads those payloads back."""

    @property
    @abstractmethod
    def encoding(self) -> str:
        """The ``encoding`` metadata of the payloads this converter writes."""

    @abstractmethod
    def to_payload(self, value: Any) -> Payload | None:
        """``value`` as a payload, or None if this converter does not handle it (the next one may)."""

    @abstractmethod
    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        """The value of a payload of this converter's encoding."""


class CompositePayloadConverter(PayloadConverter):
    """Tries its converters in order on each value; reads a payload with the converter of its
    encoding. A ``RawValue`` passes through untouched both ways, as in temporalio."""

    def __init__(self, *converters: EncodingPayloadConverter) -> None:
        self.converters: dict[bytes, EncodingPayloadConverter] = {c.encoding.encode(): c for c in converters}

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        from cadenza.sdk.converter import RawValue

        out: list[Payload] = []
        for index, value in enumerate(values):
            if isinstance(value, RawValue):
                out.append(Payload.of(value.payload))
                continue
            for converter in self.converters.values():
                payload = converter.to_payload(value)
                if payload is not None:
                    out.append(Payload.of(payload))
                    break
            else:
                names = ", ".join(e.decode() for e in self.converters)
                raise PayloadEncodeError(
                    f"Cannot encode argument {index} of type {type(value).__qualname__}: none of the "
                    f"payload converters ({names}) handles it",
                    index=index,
                    value_type=type(value),
                )
        return out

    def from_payloads(self, payloads: Sequence[Payload], type_hints: list[Any] | None = None) -> list[Any]:
        from cadenza.sdk.converter import RawValue

        hints = type_hints or []
        out: list[Any] = []
        for index, raw in enumerate(payloads):
            hint = hints[index] if index < len(hints) else None
            if hint is RawValue:
                out.append(RawValue(plain(raw)))
                continue
            payload = Payload.of(raw)
            encoding = payload.metadata.get("encoding", b"")
            converter = self.converters.get(encoding)
            if converter is None:
                known = ", ".join(e.decode() for e in self.converters)
                raise PayloadDecodeError(
                    f"Payload {index} has unknown encoding {encoding!r} (this converter reads {known})"
                )
            try:
                out.append(converter.from_payload(payload, hint))
            except PayloadDecodeError:
                raise
            except Exception as err:
                raise PayloadDecodeError(
                    f"Cannot decode payload {index} with the {encoding.decode()} converter: {err}"
                ) from err
        return out


class BinaryNullPayloadConverter(EncodingPayloadConverter):
    """``None`` as an empty ``binary/null`` payload."""

    @property
    def encoding(self) -> str:
        return ENCODING_BINARY_NULL.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return Payload({"encoding": ENCODING_BINARY_NULL}) if value is None else None

    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        return None


class BinaryPlainPayloadConverter(EncodingPayloadConverter):
    """``bytes`` as they are, ``binary/plain``."""

    @property
    def encoding(self) -> str:
        return ENCODING_BINARY_PLAIN.decode()

    def to_payload(self, value: Any) -> Payload | None:
        if isinstance(value, bytes | bytearray | memoryview):
            return Payload({"encoding": ENCODING_BINARY_PLAIN}, bytes(value))
        return None

    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        return bytes(payload.data)


class JSONPlainPayloadConverter(EncodingPayloadConverter):
    """Anything JSON can hold, ``json/plain``: dataclasses, pydantic models, enums, datetimes and UUIDs
    through pydantic's JSON form, rebuilt from the type hint."""

    @property
    def encoding(self) -> str:
        return ENCODING_JSON_PLAIN.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return Payload({"encoding": ENCODING_JSON_PLAIN}, encode_json(value, 0))

    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        return decode_json(payload.data, type_hint, 0)


class DefaultPayloadConverter(CompositePayloadConverter):
    """Null, bytes and JSON, in that order (temporalio's default less its protobuf converters: Cadenza
    payloads carry no protobuf messages)."""

    default_encoding_payload_converters: ClassVar[tuple[EncodingPayloadConverter, ...]] = (
        BinaryNullPayloadConverter(),
        BinaryPlainPayloadConverter(),
        JSONPlainPayloadConverter(),
    )

    def __init__(self) -> None:
        super().__init__(*DefaultPayloadConverter.default_encoding_payload_converters)
