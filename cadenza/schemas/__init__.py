"""History vocabulary and its Avro encoding (see ``events`` and ``codec``)."""

from cadenza.schemas.codec import decode_events, encode_events
from cadenza.schemas.events import Command, CommandType, EventType, HistoryEvent
from cadenza.schemas.registry import SchemaError, SchemaRegistry

__all__ = [
    "Command",
    "CommandType",
    "EventType",
    "HistoryEvent",
    "SchemaError",
    "SchemaRegistry",
    "decode_events",
    "encode_events",
]
