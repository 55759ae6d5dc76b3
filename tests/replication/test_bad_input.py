"""Replication messages that can never apply, or cannot apply yet.

Each is refused with an error that names the problem and changes nothing on the receiver. Over the
bus it lands in the receiving cluster's DLQ topic (``<cluster>-dlq``) with that reason in its
``error`` header, and the messages behind it in its partition still apply. The bad messages are
published by hand onto the active cluster's topic, which the standby and the other cluster consume;
the history batches among them are real batches of the active cluster, re-addressed or altered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import Callable

import pytest

from cadenza.engine.bus import Bus, Message, PermanentMessageError, partition_for, workflow_key
from cadenza.engine.bus.dlq import DeadLetter, read_dlq
from cadenza.engine.bus.errors import MessageDecodeError
from cadenza.engine.bus.messages import (
    NamespaceOperation,
    NamespaceReplication,
    ReplicationMessage,
    ReplicationTaskType,
    VersionHistoryItem,
    decode_replication,
    encode_replication,
)
from cadenza.engine.host import Host
from cadenza.engine.namespaces import ReplicatedNamespaceError
from cadenza.engine.persistence.errors import EntityNotFoundError
from cadenza.replication.history_replicator import Batch, InvalidBatchError, ReplicationError
from cadenza.replication.publisher import namespace_from_message
from cadenza.schemas.codec import decode_events, encode_events
from cadenza.schemas.service import NamespaceInfo

from .clusters import NAMES, Clusters, eventually, running_clusters

SOURCE = "active"
RECEIVERS = ("standby", "other")


# -- helpers (also used by test_dlq.py) ----------------------------------------------------------


async def topic_messages(bus: Bus, topic: str) -> list[Message]:
    """Every stored message of ``topic``, partition by partition, in offset order."""
    out: list[Message] = []
    for partition, (low, high) in sorted((await bus.watermarks(topic)).items()):
        start = low
        while start < high:
            got = await bus.read(topic, partition, start, max_messages=high - start)
            if not got:
                break
            out.extend(got)
            start = got[-1].offset + 1
    return out


async def published(bus: Bus, namespace_id: str, workflow_id: str) -> list[ReplicationMessage]:
    """The history messages the active cluster published for a workflow, in order."""
    key = workflow_key(namespace_id, workflow_id)
    out = []
    for m in await topic_messages(bus, SOURCE):
        if m.key == key and m.value is not None and not m.header("merged-from"):
            r = decode_replication(m.value)
            if r.task_type == ReplicationTaskType.HISTORY:
                out.append(r)
    return out


async def dead_letters(bus: Bus, dlq_topic: str, key: bytes | None = None) -> list[DeadLetter]:
    """Everything ever dead-lettered to ``dlq_topic`` (with ``key``), re-driven or not: a re-drive
    moves the DLQ's read position only, the messages stay in the topic."""
    return [DeadLetter.of(m) for m in await topic_messages(bus, dlq_topic) if key is None or m.key == key]


async def produce(bus: Bus, topic: str, key: bytes, value: bytes) -> None:
    producer = bus.producer()
    try:
        await producer.produce(topic, key, value)
    finally:
        await producer.close()


async def partitions(bus: Bus, topic: str = SOURCE) -> int:
    return len(await bus.watermarks(topic))


def ids_in_partition(namespace_id: str, key: bytes, count: int, n: int, prefix: str = "after") -> list[str]:
    """``n`` workflow ids of the namespace whose messages share ``key``'s partition (of ``count``)."""
    target = partition_for(key, count)
    out: list[str] = []
    i = 0
    while len(out) < n:
        wid = f"{prefix}-{i}"
        if partition_for(workflow_key(namespace_id, wid), count) == target:
            out.append(wid)
        i += 1
    return out


async def has_run(host: Host, namespace_id: str, workflow_id: str) -> bool:
    """Whether the cluster stores any run of the workflow (read from its execution store)."""
    shard = host.history.shard(namespace_id, workflow_id)
    try:
        await host.stores.executions.get_current_execution(shard.shard_id, namespace_id, workflow_id)
    except EntityNotFoundError:
        return False
    return True


async def caught_up(c: Clusters, cluster: str, topic: str = SOURCE) -> bool:
    """Whether ``cluster``'s applier has committed everything ``topic`` holds."""
    group = c.hosts[cluster].replication.applier.runner.group
    committed = await c.bus.committed(group, topic)
    for partition, (_, high) in (await c.bus.watermarks(topic)).items():
        if partition in committed and committed[partition].offset < high:
            return False
        if partition not in committed and high > 0:
            return False
    return True


async def video(c: Clusters) -> str:
    """The global namespace ``video`` (active in ``active``) and a workflow ``tmpl`` with one
    signal, replicated everywhere; returns the namespace id."""
    await c.register_global("video")
    client = c.client(SOURCE, "video")
    await client.start_workflow("Waiter", id="tmpl", task_queue="q")
    await client.get_workflow_handle("tmpl").signal("note", "first")
    await eventually(c.converged, what="tmpl everywhere")
    return (await c.hosts[SOURCE].namespaces.get("video")).id


async def good_after(c: Clusters, namespace_id: str, key: bytes) -> str:
    """Starts and signals, on the active cluster, a workflow whose messages follow ``key``'s in its
    partition, and waits until every cluster holds the same histories: the bad message did not
    hold back what came after it, and created nothing."""
    (wid,) = ids_in_partition(namespace_id, key, await partitions(c.bus), 1)
    client = c.client(SOURCE, "video")
    await client.start_workflow("Waiter", id=wid, task_queue="q")
    await client.get_workflow_handle(wid).signal("note", "later")
    await eventually(c.converged, what=f"{wid}, published after the bad message, applied everywhere")
    return wid


async def assert_dead_lettered(c: Clusters, key: bytes, reason: str, attempts: int) -> None:
    """Each receiver dead-lettered the message with ``key`` for ``reason`` after ``attempts``
    handler calls (and every copy a re-drive brought back failed for the same reason)."""

    async def landed() -> bool:
        return all([await dead_letters(c.bus, f"{n}-dlq", key) for n in RECEIVERS])

    await eventually(landed, what=f"{key!r} in the DLQ of every receiver")
    for cluster in RECEIVERS:
        letters = await dead_letters(c.bus, f"{cluster}-dlq", key)
        assert letters, f"nothing dead-lettered to {cluster}-dlq"
        for letter in letters:
            assert reason in letter.error, (cluster, letter.error)
            assert letter.source_topic == SOURCE
        assert letters[0].attempts == attempts, (cluster, letters[0])


def readdressed(m: ReplicationMessage, **changes: object) -> ReplicationMessage:
    return dataclasses.replace(m, **changes)  # type: ignore[arg-type]


# -- bytes that are not a replication message -----------------------------------------------------


def _unknown_fingerprint(good: bytes) -> bytes:
    return good[:2] + bytes(8) + good[10:]


def _truncated(good: bytes) -> bytes:
    return good[: len(good) - 7]


def _garbage(good: bytes) -> bytes:
    return b"this is not a replication message at all"


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_unknown_fingerprint, "unknown schema fingerprint 0x0000000000000000"),
        (_truncated, "truncated io.cadenza.bus.v1.ReplicationMessage"),
        (_garbage, "not Avro single-object encoded"),
    ],
    ids=["unknown-fingerprint", "truncated", "garbage"],
)
def test_undecodable_bytes_are_dead_lettered_with_the_reason_and_the_partition_goes_on(
    spoil: Callable[[bytes], bytes], reason: str
) -> None:
    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            (first, _) = await published(c.bus, ns_id, "tmpl")
            bad = spoil(encode_replication(first))
            with pytest.raises(MessageDecodeError, match=reason):
                decode_replication(bad)

            key = workflow_key(ns_id, "spoilt")
            await produce(c.bus, SOURCE, key, bad)
            await good_after(c, ns_id, key)
            await assert_dead_lettered(
                c, key, f"MessageDecodeError: cannot decode a ReplicationMessage: {reason}", 1
            )
            for cluster in RECEIVERS:
                assert not await has_run(c.hosts[cluster], ns_id, "spoilt")

    asyncio.run(main())


# -- a batch for a namespace this cluster does not know (yet) -------------------------------------


def test_a_batch_for_an_unknown_namespace_is_retried_dead_lettered_then_applied_once_it_exists() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            (first, _) = await published(c.bus, ns_id, "tmpl")
            late_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
            orphan = readdressed(first, namespace_id=late_id, workflow_id="orphan", run_id=run_id)

            standby = c.hosts["standby"].replication.applier
            with pytest.raises(ReplicationError, match=f"namespace id {late_id} is not known here yet"):
                await standby.apply(orphan, SOURCE)

            key = workflow_key(late_id, "orphan")
            await produce(c.bus, SOURCE, key, encode_replication(orphan))
            # Retried (the namespace may be on its way), then dead-lettered; what follows applies.
            await good_after(c, ns_id, key)
            await assert_dead_lettered(
                c,
                key,
                f"ReplicationError: namespace id {late_id} is not known here yet",
                standby.runner.options.max_attempts,
            )
            for cluster in RECEIVERS:
                assert not await has_run(c.hosts[cluster], late_id, "orphan")

            # The namespace is registered (with that id) on the active cluster and replicates; the
            # DLQ re-drive then applies the batch, and the DLQs drain by themselves.
            await c.hosts[SOURCE].namespaces.register(
                NamespaceInfo(
                    name="late", id=late_id, is_global=True, clusters=list(NAMES), active_cluster=SOURCE
                )
            )

            async def applied_and_drained() -> bool:
                for cluster in RECEIVERS:
                    if not await has_run(c.hosts[cluster], late_id, "orphan"):
                        return False
                    if await read_dlq(c.bus, f"{cluster}-dlq") or not await caught_up(c, cluster):
                        return False
                return True

            await eventually(
                applied_and_drained, timeout=30, what="the orphan batch applied, both DLQs empty"
            )
            for cluster in RECEIVERS:
                _, ms, events = await c.hosts[cluster].history.get_state_and_events(late_id, "orphan", run_id)
                assert encode_events(events) == encode_events(decode_events(first.events or b""))
                assert ms.version_history == [(2, 1)]
                assert await read_dlq(c.bus, f"{cluster}-dlq") == []

    asyncio.run(main())


# -- batches that contradict themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("version_history", "reason"),
    [
        ([VersionHistoryItem(2, 7)], "event 1 has version 1 but the version history says 7"),
        ([VersionHistoryItem(1, 1)], "the version history [(1, 1)] does not end at the batch's last event 2"),
        ([], "the version history [] does not end at the batch's last event 2"),
        (
            [VersionHistoryItem(2, 1), VersionHistoryItem(1, 2)],
            "item (1, 2) has event id 1, not above the previous item (2, 1)'s event id 2",
        ),
    ],
    ids=["wrong-version", "ends-early", "empty", "unordered"],
)
def test_a_batch_whose_version_history_does_not_match_its_events_is_refused(
    version_history: list[VersionHistoryItem], reason: str
) -> None:
    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            (first, _) = await published(c.bus, ns_id, "tmpl")
            bad = readdressed(
                first, workflow_id="bad-vh", run_id=str(uuid.uuid4()), version_history=version_history
            )
            with pytest.raises(InvalidBatchError) as refused:
                _decode(bad)
            named = str(refused.value)
            assert "workflow 'bad-vh'" in named and reason in named
            with pytest.raises(PermanentMessageError):
                await c.hosts["standby"].replication.applier.apply(bad, SOURCE)

            key = workflow_key(ns_id, "bad-vh")
            await produce(c.bus, SOURCE, key, encode_replication(bad))
            await good_after(c, ns_id, key)
            await assert_dead_lettered(c, key, named, 1)
            for cluster in RECEIVERS:
                assert not await has_run(c.hosts[cluster], ns_id, "bad-vh")

    asyncio.run(main())


@pytest.mark.parametrize(
    ("first_event_id", "next_event_id", "reason"),
    [
        (1, 5, "batch says events 1..4 but holds [1, 2] (2 events)"),
        (3, 5, "batch says events 3..4 but holds [1, 2] (2 events)"),
        (1, 2, "batch says events 1..1 but holds [1, 2] (2 events)"),
        (5, 5, "batch says events 5..4 but holds [1, 2] (2 events)"),
    ],
    ids=["longer", "shifted", "shorter", "empty-range"],
)
def test_a_batch_whose_event_ids_disagree_with_its_range_is_refused(
    first_event_id: int, next_event_id: int, reason: str
) -> None:
    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            (first, _) = await published(c.bus, ns_id, "tmpl")
            bad = readdressed(
                first,
                workflow_id="bad-ids",
                run_id=str(uuid.uuid4()),
                first_event_id=first_event_id,
                next_event_id=next_event_id,
            )
            with pytest.raises(InvalidBatchError, match=f"workflow 'bad-ids' .*{re.escape(reason)}"):
                _decode(bad)

            key = workflow_key(ns_id, "bad-ids")
            await produce(c.bus, SOURCE, key, encode_replication(bad))
            await good_after(c, ns_id, key)
            await assert_dead_lettered(c, key, reason, 1)
            for cluster in RECEIVERS:
                assert not await has_run(c.hosts[cluster], ns_id, "bad-ids")

    asyncio.run(main())


# -- a run that would not begin with its start ------------------------------------------------------


def test_a_first_batch_that_does_not_start_the_run_is_refused() -> None:
    """Event 1 of every run is WorkflowExecutionStarted. A batch of events 1.. that is anything
    else (here tmpl's signal, renumbered as event 1) cannot make a run: folding it would create a
    run without type, task queue or start."""

    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            (_, second) = await published(c.bus, ns_id, "tmpl")
            (signal,) = decode_events(second.events or b"")
            headless = readdressed(
                second,
                workflow_id="headless",
                run_id=str(uuid.uuid4()),
                first_event_id=1,
                next_event_id=2,
                version_history=[VersionHistoryItem(1, 1)],
                events=encode_events([dataclasses.replace(signal, event_id=1, encoded=None)]),
            )
            with pytest.raises(
                PermanentMessageError, match=r"WorkflowExecutionStarted|WORKFLOW_EXECUTION_STARTED"
            ):
                await c.hosts["standby"].replication.applier.apply(headless, SOURCE)
            assert not await has_run(c.hosts["standby"], ns_id, "headless")

            key = workflow_key(ns_id, "headless")
            await produce(c.bus, SOURCE, key, encode_replication(headless))
            await good_after(c, ns_id, key)
            for cluster in RECEIVERS:
                assert not await has_run(c.hosts[cluster], ns_id, "headless")

    asyncio.run(main())


# -- a batch that shares nothing with the run it names ------------------------------------------------


def test_a_batch_with_no_common_ancestor_is_refused_and_leaves_the_run_unchanged() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            (first, _) = await published(c.bus, ns_id, "tmpl")
            # Events 1..2 of tmpl's run again, but written with version 12: no event of it is an
            # event of the run the receivers have (events 1..3, version 1).
            events = [
                dataclasses.replace(e, version=12, encoded=None) for e in decode_events(first.events or b"")
            ]
            alien = readdressed(
                first, version_history=[VersionHistoryItem(2, 12)], events=encode_events(events)
            )
            for n in RECEIVERS:
                assert (await _run_of(c.hosts[n], ns_id, "tmpl"))[1] == [(3, 1)]

            replicator = c.hosts["standby"].replication.applier.replicator
            with pytest.raises(InvalidBatchError, match="no common ancestor") as refused:
                await replicator.apply(_decode(alien))
            assert "workflow 'tmpl'" in str(refused.value) and "[(2, 12)]" in str(refused.value)

            key = workflow_key(ns_id, "tmpl")
            await produce(c.bus, SOURCE, key, encode_replication(alien))
            # The run's own next write follows the alien batch in the partition, and applies.
            await c.client(SOURCE, "video").get_workflow_handle("tmpl").signal("note", "second")
            await eventually(c.converged, what="tmpl's next write applied everywhere")
            await assert_dead_lettered(c, key, "no common ancestor", 1)
            for n in RECEIVERS:
                history, items, branches = await _run_of(c.hosts[n], ns_id, "tmpl")
                assert items == [(4, 1)] and branches == []  # no fork, no switch
                assert history == (await _run_of(c.hosts[SOURCE], ns_id, "tmpl"))[0]
                assert c.hosts[n].replication.applier.outcomes.get("forked", 0) == 0
                assert c.hosts[n].replication.applier.outcomes.get("switched", 0) == 0

    asyncio.run(main())


async def _run_of(
    host: Host, namespace_id: str, workflow_id: str
) -> tuple[bytes, list[object], list[object]]:
    _, ms, events = await host.history.get_state_and_events(namespace_id, workflow_id, "")
    return encode_events(events), [tuple(i) for i in ms.version_history], list(ms.branches)


# -- a namespace change that goes back in failover version ------------------------------------------


def test_a_namespace_update_moving_the_failover_version_back_is_refused() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            await c.register_global("video")
            active = c.hosts[SOURCE].namespaces
            failed_over = await active.update(NamespaceInfo(name="video", id="", active_cluster="standby"))
            assert (failed_over.failover_version, failed_over.config_version) == (2, 2)

            async def everywhere(config_version: int) -> bool:
                for n in RECEIVERS:
                    if (await c.hosts[n].namespaces.get("video")).config_version != config_version:
                        return False
                return True

            await eventually(lambda: everywhere(2), what="the failover replicated")
            back = ReplicationMessage(
                namespace_id=failed_over.id,
                task_id=3,
                task_type=ReplicationTaskType.NAMESPACE,
                namespace=NamespaceReplication(
                    operation=NamespaceOperation.UPDATE,
                    id=failed_over.id,
                    name="video",
                    description="back",
                    retention_days=3,
                    is_global=True,
                    active_cluster_name="active",
                    clusters=list(NAMES),
                    config_version=3,
                    failover_version=1,
                ),
            )
            reason = "namespace 'video': replicated change 3 moves the failover version back from 2 to 1"
            assert back.namespace is not None
            with pytest.raises(ReplicatedNamespaceError, match=reason):
                await c.hosts["standby"].namespaces.apply_replicated(namespace_from_message(back.namespace))
            with pytest.raises(PermanentMessageError, match=reason):
                await c.hosts["other"].replication.applier.apply(back, SOURCE)

            key = workflow_key(failed_over.id, "")
            assert back.key == key
            await produce(c.bus, SOURCE, key, encode_replication(back))
            # A genuine change made afterwards (same key, same partition) still applies.
            later = await active.update(NamespaceInfo(name="video", id="", description="later"))
            assert later.config_version == 3
            await eventually(lambda: everywhere(3), what="the later change replicated")
            await assert_dead_lettered(c, key, f"PermanentMessageError: {reason}", 1)
            for n in RECEIVERS:
                info = await c.hosts[n].namespaces.get("video")
                assert (info.description, info.active_cluster, info.failover_version) == (
                    "later",
                    "standby",
                    2,
                )

    asyncio.run(main())


# -- small helpers ------------------------------------------------------------------------------------


def _decode(m: ReplicationMessage) -> Batch:
    return Batch.decode(
        m.namespace_id,
        m.workflow_id,
        m.run_id,
        m.first_event_id,
        m.next_event_id,
        m.version_history,
        m.events,
    )
