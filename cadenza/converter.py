"""Payload conversion (see ``cadenza.sdk.converter`` and ``cadenza.sdk.payload_converter``):
``DataConverter``, the payload converters, ``PayloadCodec``, ``RawValue`` and ``default()``
(temporalio's name for the default converter)."""

from cadenza.sdk.converter import (
    DataConverter,
    PayloadCodec,
    RawValue,
    default_converter,
)
from cadenza.sdk.payload_converter import (
    BinaryNullPayloadConverter,
    BinaryPlainPayloadConverter,
    CompositePayloadConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadConverter,
)

default = default_converter
"""The default ``DataConverter`` (temporalio's ``temporalio.converter.default()``)."""

__all__ = [
    "BinaryNullPayloadConverter",
    "BinaryPlainPayloadConverter",
    "CompositePayloadConverter",
    "DataConverter",
    "DefaultPayloadConverter",
    "EncodingPayloadConverter",
    "JSONPlainPayloadConverter",
    "PayloadCodec",
    "PayloadConverter",
    "RawValue",
    "default",
    "default_converter",
]
