"""Errors of the event bus, one root for every backend.

Each backend translates its driver's exceptions (``sqlite3``, ``confluent_kafka.KafkaException``)
into these types in one place, and the contract suite asserts the types, so callers such as the
outbox publisher handle one vocabulary whichever backend runs.
"""

from __future__ import annotations


class BusError(Exception):
    """Root of every bus error."""


class BusUnavailableError(BusError):
    """The broker or the log cannot be reached right now; retrying later may succeed."""


class BusClosedError(BusUnavailableError):
    """The producer, consumer or bus was closed; a new one must be opened."""


class ProduceError(BusError):
    """The broker did not acknowledge a message: it may or may not be stored, so the caller resends.

    Resending is safe for every consumer of this bus: effects are idempotent per message key and id.
    """


class TopicNotFoundError(BusError):
    """A topic named in a call does not exist."""


class TopicExistsError(BusError):
    """``create_topics`` was asked for a topic that already exists (and ``exist_ok`` was false)."""


class TopologyError(BusError, ValueError):
    """The ``kafka:`` configuration block is invalid; the message names the key."""


class PermanentMessageError(BusError):
    """Raised by a handler when retrying a message cannot help: the runner dead-letters it at once."""


class MessageDecodeError(PermanentMessageError, ValueError):
    """A message's bytes are not a bus message this build can read (garbage, or unknown schema)."""


class DeadLetterError(BusError):
    """A DLQ operation cannot proceed (e.g. a message lacks its ``source-topic`` header)."""
