"""What the Kafka producer, consumer and admin share: error translation and message conversion."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from .errors import BusError, BusUnavailableError, ProduceError, TopicExistsError, TopicNotFoundError
from .protocol import Message

log = logging.getLogger("cadenza.bus.kafka")
librdkafka_log = logging.getLogger("cadenza.bus.kafka.librdkafka")

# Answers that pass within moments after a topic is created or a broker restarts.
TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    # Right after a topic is created its partitions' leader epoch is still spreading between the
    # broker's caches: an offsets request can meet "leader epoch is newer than broker epoch".
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError.FENCED_LEADER_EPOCH,
}
NOT_FOUND = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}


def translate(exc: BaseException) -> BaseException:
    """The one place where confluent-kafka errors become bus errors."""
    if isinstance(exc, BusError):
        return exc
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return translate_error(exc.args[0])
    return exc


def translate_error(err: KafkaError) -> BusError:
    code = err.code()
    if code in NOT_FOUND:
        return TopicNotFoundError(f"topic not found: {err.str()}")
    if code == KafkaError.TOPIC_ALREADY_EXISTS:
        return TopicExistsError(err.str())
    if code in (KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT):
        return ProduceError(f"not acknowledged in time: {err.str()}")
    if code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._DESTROY):
        return BusUnavailableError(f"kafka unavailable: {err.str()}")
    return BusUnavailableError(f"kafka error {err.name()}: {err.str()}")


def to_message(msg: Any, attempt: int) -> Message:
    _, ts = msg.timestamp()
    raw_headers = msg.headers() or []
    headers = tuple((k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in raw_headers)
    return Message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), headers, ts, attempt)
