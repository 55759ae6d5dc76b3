"""Kafka 4 (KRaft) from `cadenza dev services`, through confluent-kafka as the product uses it."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.kafka


def test_idempotent_produce_and_consume_on_fresh_topic(kafka_bootstrap: str) -> None:
    topic = f"cadenza-smoke-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    futures[topic].result(timeout=30)
    assert topic in admin.list_topics(timeout=10).topics

    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    delivered: list[tuple[str, int]] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append((msg.key().decode(), msg.partition()))  # type: ignore[attr-defined]

    for i in range(30):
        producer.produce(topic, key=f"k{i % 5}", value=f"v{i}", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert not errors
    assert len(delivered) == 30
    # Same key, same partition: ordering per workflow key depends on it.
    by_key: dict[str, set[int]] = {}
    for key, partition in delivered:
        by_key.setdefault(key, set()).add(partition)
    assert all(len(parts) == 1 for parts in by_key.values())

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        seen: list[str] = []
        for _ in range(120):
            msg = consumer.poll(0.5)
            if msg is None:
                if len(seen) >= 30:
                    break
                continue
            assert msg.error() is None, msg.error()
            value = msg.value()
            assert value is not None
            seen.append(value.decode())
            if len(seen) >= 30:
                break
        assert sorted(seen) == sorted(f"v{i}" for i in range(30))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    admin.delete_topics([topic])[topic].result(timeout=30)
