"""Pydantic models as payloads (temporalio's ``temporalio.contrib.pydantic``).

The default data converter already encodes Pydantic v2 models (and dataclasses, enums, datetimes,
UUIDs...) through pydantic's JSON mode and decodes them back by the type hints of workflow and
activity parameters, results, signals and queries. ``pydantic_data_converter`` is that converter,
so ``Client.connect(..., data_converter=pydantic_data_converter)`` keeps working unchanged.
"""

from __future__ import annotations

from cadenza.sdk.converter import DataConverter, default_converter

__all__ = ["pydantic_data_converter"]

pydantic_data_converter: DataConverter = default_converter()
"""The data converter for Pydantic models: the default one, which handles them."""
