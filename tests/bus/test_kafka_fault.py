"""Kafka killed with SIGKILL and restarted in the middle of a produce/consume load run.

What must hold: every message the producer side (playing the outbox: it resends whatever was not
acknowledged) eventually gets acknowledged; every acknowledged message is consumed at least once;
the idempotent effect (a set keyed by message id) is applied exactly once per id.

The broker is the one `cadenza dev services up kafka` started: its PID comes from the devservices
PID file. It is restarted from the command recorded in its run directory, on the same data
directory: `cadenza dev services up` starts every server on a fresh directory, which would be a new
empty cluster rather than a restart, and a restart is what is being tested.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cadenza.engine.bus import CommittedOffset, ConsumerRunner, Message, RunnerOptions, TopicSpec
from cadenza.engine.bus.errors import BusError
from cadenza.engine.bus.kafka import KafkaBus
from cadenza.ops.devservices.manager import PidRecord, ServiceManager, is_alive, process_start_ticks
from cadenza.ops.devservices.services import probe_kafka

from .contract import name, run
from .kafka_support import require_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
MESSAGES = 3000
RATE = 300  # messages per second: the run spans about ten seconds


def kill_kafka(manager: ServiceManager) -> PidRecord:
    record = manager.record("kafka")
    if record is None or not is_alive(record):
        pytest.fail(
            "Kafka was not started by `cadenza dev services up kafka` (no live PID file); "
            "the fault test must be able to kill and restart it",
            pytrace=False,
        )
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_alive(record), f"kafka pid {record.pid} survived SIGKILL"
    return record


def restart_kafka(manager: ServiceManager, old: PidRecord, address: str) -> None:
    run_dir = manager.run_dir("kafka")
    command = (run_dir / "command.txt").read_text(encoding="utf-8").split()
    with manager.log_file("kafka").open("ab") as log:
        proc = subprocess.Popen(
            command,
            cwd=run_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Recorded like `up` records it, so `cadenza dev services down` stops this process later.
    record = PidRecord(proc.pid, process_start_ticks(proc.pid) or 0, old.address, time.time())
    manager.pid_file("kafka").write_text(record.to_json(), encoding="utf-8")
    deadline = time.monotonic() + 120
    while not probe_kafka(address, 2.0):
        assert proc.poll() is None, f"restarted kafka exited:\n{manager.logs('kafka', 40)}"
        assert time.monotonic() < deadline, "restarted kafka did not answer within 120s"
        time.sleep(0.5)


def test_sigkill_and_restart_during_load_loses_no_acknowledged_message() -> None:
    address = require_kafka()
    manager = ServiceManager(progress=lambda _: None)
    record = manager.record("kafka")
    if record is None or record.address != address:
        pytest.fail(
            f"the Kafka under test ({address}) is not the one `cadenza dev services up kafka` "
            "runs; the fault test needs to kill and restart it",
            pytrace=False,
        )

    async def main() -> None:
        bus = KafkaBus(address, producer_config={"message.timeout.ms": 15_000})
        topic = name("fault")
        await bus.create_topics([TopicSpec(topic, 3), TopicSpec(f"{topic}-dlq", 1)])
        acked: set[int] = set()
        applied: list[int] = []  # the effect log: one entry per id applied
        applied_ids: set[int] = set()
        deliveries = 0
        resends = 0

        async def effect(message: Message) -> None:
            nonlocal deliveries
            deliveries += 1
            ident = int(message.value or b"-1")
            if ident not in applied_ids:  # idempotent: keyed by the message id
                applied_ids.add(ident)
                applied.append(ident)

        runner = ConsumerRunner(
            bus,
            group=name("g"),
            topics=[topic],
            dlq_topic=f"{topic}-dlq",
            handler=effect,
            options=RunnerOptions(max_attempts=1000, backoff_max=1.0),
        )
        runner.start()
        producer = bus.producer()

        async def send(ident: int) -> None:
            nonlocal resends
            while True:  # the outbox's rule: a task is done only once the broker acknowledged it
                try:
                    await producer.produce(topic, f"wf-{ident % 97}".encode(), str(ident).encode())
                    acked.add(ident)
                    return
                except BusError:
                    resends += 1
                    await asyncio.sleep(0.5)

        loop = asyncio.get_running_loop()
        sends = []
        killed = restarted = False
        started = loop.time()
        for ident in range(MESSAGES):
            sends.append(asyncio.create_task(send(ident)))
            await asyncio.sleep(1 / RATE)
            if not killed and ident == MESSAGES // 3:
                old = await asyncio.to_thread(kill_kafka, manager)
                killed = True
                await asyncio.sleep(2)
                await asyncio.to_thread(restart_kafka, manager, old, address)
                restarted = True
        assert killed and restarted
        await asyncio.wait_for(asyncio.gather(*sends), 180)
        deadline = loop.time() + 120
        while applied_ids != acked and loop.time() < deadline:
            await asyncio.sleep(0.2)
        await runner.stop()
        await producer.close()
        await bus.delete_topics([topic, f"{topic}-dlq"])
        took = loop.time() - started
        print(f"\n{MESSAGES} messages in {took:.1f}s; {deliveries} deliveries, {resends} resends")
        assert acked == set(range(MESSAGES))
        missing = acked - applied_ids
        assert not missing, f"{len(missing)} acknowledged messages never consumed, e.g. {sorted(missing)[:5]}"
        assert len(applied) == len(set(applied)) == MESSAGES
        assert deliveries >= MESSAGES

    run(main(), timeout=420)


def test_group_offsets_are_read_while_a_restarted_broker_loads_its_coordinators() -> None:
    # Reads of a group's offsets right after a broker restart meet "coordinator not available /
    # not coordinator" answers. Through librdkafka's admin API a NOT_COORDINATOR answer could crash
    # the whole process (SIGSEGV); the bus reads offsets through a group handle, which must keep
    # answering, with the offsets (and metadata) committed before the crash.
    address = require_kafka()
    manager = ServiceManager(progress=lambda _: None)

    async def main() -> None:
        bus = KafkaBus(address)
        topic, group = name("offsets-restart"), name("g")
        await bus.create_topics([TopicSpec(topic, 3)])
        committed = {p: CommittedOffset(7 + p, f"intent-{p}") for p in range(3)}
        await bus.set_committed(group, topic, committed)
        old = await asyncio.to_thread(kill_kafka, manager)
        restart = asyncio.create_task(asyncio.to_thread(restart_kafka, manager, old, address))
        reads = answered = 0
        while not restart.done() or answered < 20:
            reads += 1
            try:
                got = await asyncio.wait_for(bus.committed(group, topic), 60)
            except (BusError, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            assert got == committed, f"read {got} after the restart, committed {committed}"
            answered += int(restart.done())
        await restart
        await bus.delete_topics([topic])
        await bus.close()
        print(f"\n{reads} offset reads across the restart")

    run(main(), timeout=300)


def test_devservices_pid_file_location_is_known() -> None:
    # The fault test depends on where devservices keeps its PID files; fail loudly if that moves.
    manager = ServiceManager(progress=lambda _: None)
    assert manager.pid_file("kafka") == Path(manager.home) / "run" / "kafka.pid"
