"""The event bus: keyed, ordered, durable messages between clusters and to the visibility indexer.

Two backends with one contract (``protocol``): ``EmbeddedBus`` (SQLite, for one process) and
``KafkaBus`` (confluent-kafka, imported lazily because it is an optional dependency). ``open_bus``
picks one from a URL. ``ConsumerRunner`` is the consumer loop replication and visibility plug into;
``dlq`` holds the dead-letter tools behind ``cadenza admin dlq``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .dlq import DeadLetter, MergeResult, merge_dlq, purge_dlq, read_dlq, send_to_dlq
from .embedded import EmbeddedBus
from .errors import (
    BusClosedError,
    BusError,
    BusUnavailableError,
    DeadLetterError,
    MessageDecodeError,
    PermanentMessageError,
    ProduceError,
    TopicExistsError,
    TopicNotFoundError,
    TopologyError,
)
from .messages import (
    ReplicationMessage,
    ReplicationTaskType,
    VisibilityMessage,
    VisibilityMessageType,
    decode_message,
    decode_replication,
    decode_visibility,
    encode_replication,
    encode_visibility,
)
from .protocol import (
    Bus,
    CommittedOffset,
    Consumer,
    Delivery,
    Message,
    Producer,
    TopicSpec,
    partition_for,
    workflow_key,
)
from .runner import ConsumerRunner, CountingMetrics, NoopMetrics, RunnerMetrics, RunnerOptions
from .topology import KafkaTopology, default_topology, setup_topics

if TYPE_CHECKING:
    from .kafka import KafkaBus

__all__ = [
    "Bus",
    "BusClosedError",
    "BusError",
    "BusUnavailableError",
    "CommittedOffset",
    "Consumer",
    "ConsumerRunner",
    "CountingMetrics",
    "DeadLetter",
    "DeadLetterError",
    "Delivery",
    "EmbeddedBus",
    "KafkaBus",
    "KafkaTopology",
    "MergeResult",
    "Message",
    "MessageDecodeError",
    "NoopMetrics",
    "PermanentMessageError",
    "ProduceError",
    "Producer",
    "ReplicationMessage",
    "ReplicationTaskType",
    "RunnerMetrics",
    "RunnerOptions",
    "TopicExistsError",
    "TopicNotFoundError",
    "TopicSpec",
    "TopologyError",
    "VisibilityMessage",
    "VisibilityMessageType",
    "decode_message",
    "decode_replication",
    "decode_visibility",
    "default_topology",
    "encode_replication",
    "encode_visibility",
    "merge_dlq",
    "open_bus",
    "partition_for",
    "purge_dlq",
    "read_dlq",
    "send_to_dlq",
    "setup_topics",
    "workflow_key",
]


def __getattr__(name: str) -> Any:
    if name == "KafkaBus":
        from .kafka import KafkaBus

        return KafkaBus
    raise AttributeError(name)


def open_bus(url: str) -> Bus:
    """``kafka://host:port[,host:port...]`` or ``sqlite:///path/to/file.db`` (``sqlite://:memory:``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"bus URL {url!r} has no scheme; use kafka://brokers or sqlite:///path")
    if scheme == "kafka":
        from .kafka import KafkaBus

        return KafkaBus(rest)
    if scheme == "sqlite":
        return EmbeddedBus(rest if rest == ":memory:" else rest or ":memory:")
    raise ValueError(f"bus URL {url!r}: unknown scheme {scheme!r}; use kafka:// or sqlite://")
