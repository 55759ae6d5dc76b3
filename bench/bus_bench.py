"""Bus throughput and latency, on the embedded log and on real Kafka, with 1 KB messages.

Three figures per backend:

- produce: messages/s with up to ``--window`` unacknowledged messages in flight (the outbox pattern:
  send many, await every acknowledgement);
- consume: messages/s through ``ConsumerRunner`` applying a no-op effect (ack, commit per batch);
- ack latency: produce -> broker acknowledgement, p50/p99, at a paced ``--rate`` messages/s.

    .venv/bin/python bench/bus_bench.py --backend embedded --backend kafka --messages 50000

Kafka is read from CADENZA_TEST_KAFKA (default 127.0.0.1:19092; `cadenza dev services up kafka`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from cadenza.engine.bus import Bus, ConsumerRunner, EmbeddedBus, Message, RunnerOptions, TopicSpec

VALUE = os.urandom(1024)
PARTITIONS = 4


def open_backend(backend: str, directory: Path) -> Bus:
    if backend == "embedded":
        return EmbeddedBus(directory / "bus.db")
    from cadenza.engine.bus.kafka import KafkaBus

    return KafkaBus(os.environ.get("CADENZA_TEST_KAFKA") or "127.0.0.1:19092")


async def produce(bus: Bus, topic: str, count: int, window: int) -> float:
    producer = bus.producer()
    in_flight: set[asyncio.Future[object]] = set()
    started = time.perf_counter()
    for i in range(count):
        future = producer.produce(topic, f"ns/wf-{i % 1000}".encode(), VALUE)
        in_flight.add(future)  # type: ignore[arg-type]
        future.add_done_callback(in_flight.discard)  # type: ignore[arg-type]
        if len(in_flight) >= window:
            await asyncio.wait(list(in_flight), return_when=asyncio.FIRST_COMPLETED)
    await producer.flush()
    took = time.perf_counter() - started
    await producer.close()
    return count / took


async def consume(bus: Bus, topic: str, count: int) -> float:
    done = asyncio.Event()
    seen = 0

    async def noop(message: Message) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            done.set()

    runner = ConsumerRunner(
        bus,
        group=f"bench-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        dlq_topic=f"{topic}-dlq",
        handler=noop,
        options=RunnerOptions(batch_size=2000, poll_timeout=0.5, lag_interval=0),
    )
    started = time.perf_counter()
    runner.start()
    await done.wait()
    took = time.perf_counter() - started
    await runner.stop()
    return count / took


async def latency(bus: Bus, topic: str, rate: int, seconds: float) -> tuple[float, float]:
    producer = bus.producer()
    samples: list[float] = []
    loop = asyncio.get_running_loop()

    def record(sent: float) -> object:
        return lambda _: samples.append(loop.time() - sent)

    # Warm up: an idempotent Kafka producer first acquires its producer id; that is start-up, not lag.
    await producer.produce(topic, b"warm-up", VALUE)
    futures = []
    interval = 1 / rate
    start = loop.time()
    for i in range(int(rate * seconds)):
        # Paced against the schedule, not the previous send, so slow acks do not lower the rate.
        delay = start + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        future = producer.produce(topic, f"ns/wf-{i % 1000}".encode(), VALUE)
        future.add_done_callback(record(loop.time()))  # type: ignore[arg-type]
        futures.append(future)
    await asyncio.gather(*futures)
    await producer.close()
    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49] * 1000, quantiles[98] * 1000


async def bench(backend: str, messages: int, window: int, rate: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bus = open_backend(backend, Path(tmp))
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        await bus.create_topics(
            [
                TopicSpec(topic, PARTITIONS),
                TopicSpec(f"{topic}-dlq", 1),
                TopicSpec(f"{topic}-lat", PARTITIONS),
            ]
        )
        try:
            produced = await produce(bus, topic, messages, window)
            consumed = await consume(bus, topic, messages)
            p50, p99 = await latency(bus, f"{topic}-lat", rate, seconds)
        finally:
            await bus.delete_topics([topic, f"{topic}-dlq", f"{topic}-lat"])
            await bus.close()
    print(
        f"{backend:9s} produce {produced:9,.0f} msg/s  consume (runner, no-op) {consumed:9,.0f} msg/s  "
        f"ack latency at {rate}/s p50 {p50:6.1f} ms p99 {p99:6.1f} ms  ({messages} x 1 KB, "
        f"{PARTITIONS} partitions, window {window})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", action="append", choices=["embedded", "kafka"])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=5_000, help="most unacknowledged messages in flight")
    parser.add_argument("--rate", type=int, default=1_000, help="messages/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    args = parser.parse_args()
    for backend in args.backend or ["embedded", "kafka"]:
        asyncio.run(bench(backend, args.messages, args.window, args.rate, args.seconds))


if __name__ == "__main__":
    main()
