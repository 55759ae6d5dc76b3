"""Payload conversion (see ``cadenza.sdk.converter``): ``DataConverter``, ``PayloadCodec``,
``RawValue`` and ``default()`` (temporalio's name for the default converter)."""

from cadenza.sdk.converter import (
    DataConverter,
    PayloadCodec,
    RawValue,
    default_converter,
)

default = default_converter
"""The default ``DataConverter`` (temporalio's ``temporalio.converter.default()``)."""

__all__ = ["DataConverter", "PayloadCodec", "RawValue", "default", "default_converter"]
