"""The replication DLQ: a message that cannot apply is set aside without holding back the rest of
its partition, the automatic re-drive (``DlqRetrier``, every 0.5 s in these clusters) applies it once
its cause is gone, and ``cadenza admin dlq read`` shows what waits there."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from rpc.devserver import DevServer, cadenza_argv, env

from cadenza.engine.bus import CommittedOffset, EmbeddedBus, workflow_key
from cadenza.engine.bus.dlq import read_dlq
from cadenza.engine.bus.messages import encode_replication
from cadenza.engine.errors import InvalidArgumentError
from cadenza.schemas.codec import encode_events
from cadenza.schemas.service import NamespaceInfo

from .clusters import NAMES, Clusters, eventually, running_clusters
from .test_bad_input import (
    RECEIVERS,
    SOURCE,
    caught_up,
    dead_letters,
    has_run,
    ids_in_partition,
    partitions,
    produce,
    published,
    readdressed,
    topic_messages,
    video,
)


async def same_on(c: Clusters, clusters: tuple[str, ...], namespace_id: str, workflow_id: str) -> bool:
    """Whether the workflow's current run has the same history on ``clusters`` as on the active."""
    want = await _history(c, SOURCE, namespace_id, workflow_id)
    if want is None:
        return False
    for n in clusters:
        if await _history(c, n, namespace_id, workflow_id) != want:
            return False
    return True


async def _history(c: Clusters, cluster: str, namespace_id: str, workflow_id: str) -> bytes | None:
    host = c.hosts[cluster]
    if not await has_run(host, namespace_id, workflow_id):
        return None
    _, _, events = await host.history.get_state_and_events(namespace_id, workflow_id, "")
    return encode_events(events)


async def _published_count(c: Clusters, key: bytes, n: int) -> bool:
    return len([m for m in await topic_messages(c.bus, SOURCE) if m.key == key]) == n


async def _dead_lettered(c: Clusters, cluster: str, key: bytes, n: int) -> bool:
    return len(await dead_letters(c.bus, f"{cluster}-dlq", key)) >= n


async def start_and_signal(c: Clusters, workflow_ids: list[str], signals: int = 1) -> None:
    client = c.client(SOURCE, "video")
    for wid in workflow_ids:
        await client.start_workflow("Waiter", id=wid, task_queue="q")
        for i in range(signals):
            await client.get_workflow_handle(wid).signal("note", f"{wid}-{i}")


def test_a_poison_batch_does_not_stall_its_partition_and_applies_once_its_namespace_exists() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            first, second = await published(c.bus, ns_id, "tmpl")
            late_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
            key = workflow_key(late_id, "orphan")
            # Both batches of a run of a namespace no receiver knows yet, then five workflows of a
            # known namespace keyed into the same partition.
            for m in (first, second):
                orphan = readdressed(m, namespace_id=late_id, workflow_id="orphan", run_id=run_id)
                await produce(c.bus, SOURCE, key, encode_replication(orphan))
            behind = ids_in_partition(ns_id, key, await partitions(c.bus), 5)
            await start_and_signal(c, behind, signals=2)

            async def behind_applied() -> bool:
                return all([await same_on(c, RECEIVERS, ns_id, wid) for wid in behind])

            await eventually(behind_applied, what="the workflows behind the poison batches applied")

            async def both_dead_lettered() -> bool:
                return all([await _dead_lettered(c, n, key, 2) for n in RECEIVERS])

            await eventually(both_dead_lettered, what="both orphan batches in both DLQs")
            for n in RECEIVERS:
                assert not await has_run(c.hosts[n], late_id, "orphan")
                errors = {d.error for d in await dead_letters(c.bus, f"{n}-dlq", key)}
                assert errors == {
                    f"ReplicationError: namespace id {late_id} is not known here yet (its registration "
                    "may still be on its way)"
                }

            # The cause goes away: the namespace is registered with that id and replicates. Nobody
            # touches the DLQs; the re-drive empties them and the run appears, both batches of it.
            await c.hosts[SOURCE].namespaces.register(
                NamespaceInfo(
                    name="late", id=late_id, is_global=True, clusters=list(NAMES), active_cluster=SOURCE
                )
            )

            async def drained() -> bool:
                for n in RECEIVERS:
                    if not await has_run(c.hosts[n], late_id, "orphan"):
                        return False
                    if await read_dlq(c.bus, f"{n}-dlq") or not await caught_up(c, n):
                        return False
                return True

            await eventually(drained, timeout=30, what="both DLQs drained, the orphan run applied")
            histories = {n: await c.histories(n) for n in RECEIVERS}
            assert histories["standby"] == histories["other"]
            orphan_key = (late_id, "orphan", run_id)
            assert set(histories["standby"]) == set(await c.histories(SOURCE)) | {orphan_key}
            _, ms, events = await c.hosts["standby"].history.get_state_and_events(late_id, "orphan", run_id)
            assert [e.event_id for e in events] == [1, 2, 3]  # both batches, each once
            assert [tuple(i) for i in ms.version_history] == [(3, 1)]
            assert all(c.hosts[n].replication.dlq.applied >= 1 for n in RECEIVERS)

    asyncio.run(main())


def test_batches_missing_their_predecessors_wait_in_the_dlq_until_the_source_can_send_them() -> None:
    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            standby = c.hosts["standby"].replication.applier
            await standby.pause()
            # The source cannot be asked for missing events (as if it were unreachable).
            standby.remote = None
            await start_and_signal(c, ["gap"], signals=2)
            key = workflow_key(ns_id, "gap")
            # start (events 1-2), a signal (3), a signal (4)
            await eventually(lambda: _published_count(c, key, 3), what="gap's three batches published")
            stored = [m for m in await topic_messages(c.bus, SOURCE) if m.key == key]
            partition = stored[0].partition
            group = standby.runner.group
            assert (await c.bus.committed(group, SOURCE))[partition].offset == stored[0].offset
            # The standby lost the run's first batch (it joined late; its copy was purged).
            await c.bus.set_committed(group, SOURCE, {partition: CommittedOffset(stored[0].offset + 1)})
            behind = ids_in_partition(ns_id, key, await partitions(c.bus), 2)
            await start_and_signal(c, behind)
            standby.resume()

            async def behind_applied() -> bool:
                return all([await same_on(c, ("standby",), ns_id, wid) for wid in behind])

            await eventually(behind_applied, what="the workflows behind the gap applied")
            await eventually(lambda: _dead_lettered(c, "standby", key, 2), what="gap's batches dead-lettered")
            assert not await has_run(c.hosts["standby"], ns_id, "gap")
            assert await same_on(c, ("other",), ns_id, "gap")
            letters = await dead_letters(c.bus, "standby-dlq", key)
            assert [d.source_offset for d in letters[:2]] == [m.offset for m in stored[1:]]
            assert "events 1..2 are missing here" in letters[0].error
            assert "events 1..3 are missing here" in letters[1].error
            assert letters[0].attempts == standby.runner.options.max_attempts

            # The source answers again: the re-drive fills the gap and the DLQ drains by itself.
            standby.remote = c.remote

            async def healed() -> bool:
                if await read_dlq(c.bus, "standby-dlq") or not await caught_up(c, "standby"):
                    return False
                return await c.converged()

            await eventually(healed, timeout=30, what="the gap filled, the DLQ empty, histories equal")
            _, _, events = await c.hosts["standby"].history.get_state_and_events(ns_id, "gap", "")
            assert [e.event_id for e in events] == [1, 2, 3, 4]

    asyncio.run(main())


def test_a_redriven_message_is_retried_by_the_cluster_that_dead_lettered_it_only() -> None:
    """One undecodable message reaches both receivers of the active cluster's topic, and each
    dead-letters it. Re-driving the standby's DLQ must not hand the other cluster a new copy to
    fail on (with both clusters re-driving automatically, copies would double every round): the
    re-drive applies the DLQ here, and what can never apply is parked for an operator."""

    async def main() -> None:
        async with running_clusters() as c:
            for n in RECEIVERS:  # re-drive by hand below, once
                await c.hosts[n].replication.dlq.stop()
            key = b"poison"
            await produce(c.bus, SOURCE, key, b"not a replication message")

            async def dead_lettered_once() -> bool:
                for n in RECEIVERS:
                    if len(await dead_letters(c.bus, f"{n}-dlq", key)) != 1 or not await caught_up(c, n):
                        return False
                return True

            await eventually(dead_lettered_once, what="the poison dead-lettered by both receivers")
            source_before = await c.bus.watermarks(SOURCE)
            retrier = c.hosts["standby"].replication.dlq
            assert await retrier.redrive() == 0
            assert retrier.parked == 1 and retrier.applied == 0
            assert await read_dlq(c.bus, "standby-dlq") == []  # drained: parked, not lost
            parked = await read_dlq(c.bus, "standby-dlq-parked")
            assert [p.message.key for p in parked] == [key]
            assert await c.bus.watermarks(SOURCE) == source_before, "nothing was produced to the source"
            other = await dead_letters(c.bus, "other-dlq", key)
            assert len(other) == 1, (
                f"the standby's re-drive of one message made the other cluster dead-letter it again: "
                f"{[(d.source_offset, d.error) for d in other]}"
            )

    asyncio.run(main())


def test_batches_of_a_namespace_not_replicated_here_are_skipped_not_dead_lettered() -> None:
    """A global namespace lists its clusters; the standby is not among ``two``'s. The standby
    consumes the active cluster's topic all the same, so it meets ``two``'s batches: they are not
    for it. Retrying them (each retry holds back the partition's next poll), dead-lettering them
    and re-driving them forever is wrong: they are to be skipped, as the namespace's own
    registration is."""

    async def main() -> None:
        async with running_clusters() as c:
            ns_id = await video(c)
            two = await c.hosts[SOURCE].namespaces.register(
                NamespaceInfo(
                    name="two", id="", is_global=True, clusters=[SOURCE, "other"], active_cluster=SOURCE
                )
            )
            client = c.client(SOURCE, "two")
            await client.start_workflow("Waiter", id="t2", task_queue="q")
            await client.get_workflow_handle("t2").signal("note", "x")
            key = workflow_key(two.id, "t2")
            behind = ids_in_partition(ns_id, key, await partitions(c.bus), 1)
            await start_and_signal(c, behind)

            await eventually(lambda: same_on(c, ("other",), two.id, "t2"), what="t2 on the other cluster")
            await eventually(lambda: same_on(c, RECEIVERS, ns_id, behind[0]), what="the workflow behind t2")
            assert not await has_run(c.hosts["standby"], two.id, "t2")
            letters = await dead_letters(c.bus, "standby-dlq", key)
            assert letters == [], [(d.attempts, d.error) for d in letters]

    asyncio.run(main())


# -- the operator's view, with a real server ---------------------------------------------------------


def _dlq_read(log: Path, topic: str) -> list[dict[str, object]]:
    proc = subprocess.run(
        [*cadenza_argv(), "admin", "dlq", "read", "--topic", topic, "--bus", f"sqlite://{log}", "-o", "json"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, object]] = json.loads(proc.stdout)
    return rows


def test_admin_dlq_read_shows_a_dead_lettered_replication_message(tmp_path: Path) -> None:
    log = (tmp_path / "replication.bus").resolve()
    standby = DevServer(
        ["--cluster", "standby", "--replication-log", str(log), "--db-filename", str(tmp_path / "standby.db")]
    ).start()
    try:

        async def publish() -> None:
            bus = EmbeddedBus(log)
            try:
                await produce(bus, SOURCE, b"ns/poisoned", b"garbage in the active cluster's topic")
            finally:
                await bus.close()

        asyncio.run(publish())
        deadline = time.monotonic() + 30
        while True:
            rows = [r for r in _dlq_read(log, "standby-dlq") if r["key"] == "ns/poisoned"]
            if rows:
                break
            assert time.monotonic() < deadline, "not dead-lettered within 30 s"
            time.sleep(0.2)
        (row,) = rows
        assert str(row["error"]).startswith(
            "MessageDecodeError: cannot decode a ReplicationMessage: not Avro single-object encoded"
        )
        assert str(row["source"]).startswith("active[") and row["attempts"] == 1
    finally:
        assert standby.stop() == 0, standby.stderr()[-3000:]


def test_dlq_merge_and_purge_by_source_cluster_touch_that_source_only() -> None:
    """What the standby could not apply from two clusters: purging one source's messages keeps the
    other's in the DLQ; merging the other's applies them here once their cause is gone."""

    async def main() -> None:
        # No automatic re-drive during the test: the operator works the DLQ by hand.
        async with running_clusters(dlq_retry_s=3600) as c:
            ns_id = await video(c)
            first, _ = await published(c.bus, ns_id, "tmpl")
            late_id = str(uuid.uuid4())
            run_a, run_o = str(uuid.uuid4()), str(uuid.uuid4())
            # The same first batch, for a namespace nobody knows yet, once on each source's topic.
            from_active = readdressed(first, namespace_id=late_id, workflow_id="from-active", run_id=run_a)
            from_other = readdressed(first, namespace_id=late_id, workflow_id="from-other", run_id=run_o)
            key_a, key_o = workflow_key(late_id, "from-active"), workflow_key(late_id, "from-other")
            await produce(c.bus, "active", key_a, encode_replication(from_active))
            await produce(c.bus, "other", key_o, encode_replication(from_other))

            async def both_waiting() -> bool:
                return len(await read_dlq(c.bus, "standby-dlq")) == 2

            await eventually(both_waiting, timeout=30, what="both batches in the standby's DLQ")
            fe = c.hosts["standby"].frontend

            # Bad input changes nothing.
            for source, action, says in [
                ("standby", "merge", "source_cluster 'standby' is not a cluster this cluster replicates"),
                ("nowhere", "purge", "(it replicates from: active, other)"),
                ("active", "replay", "action must be 'merge' or 'purge', not 'replay'"),
            ]:
                with pytest.raises(InvalidArgumentError, match=re.escape(says)):
                    await fe.replication_dlq_work(source, action)
            assert len(await read_dlq(c.bus, "standby-dlq")) == 2

            purged = await fe.replication_dlq_work("other", "purge")
            assert purged == {"merged": 0, "purged": 1, "parked": 0, "still_failing": 0, "kept": 1}
            (left,) = await read_dlq(c.bus, "standby-dlq")
            assert left.source_topic == "active" and left.message.key == key_a

            # Merging before the cause is gone: it fails again and stays.
            again = await fe.replication_dlq_work("active", "merge")
            assert (again["merged"], again["still_failing"], again["kept"]) == (0, 1, 1)
            assert len(await read_dlq(c.bus, "standby-dlq")) == 1

            await c.hosts[SOURCE].namespaces.register(
                NamespaceInfo(
                    name="late", id=late_id, is_global=True, clusters=list(NAMES), active_cluster=SOURCE
                )
            )
            await eventually(lambda: c.all_know("late", NAMES), what="the namespace everywhere")
            merged = await fe.replication_dlq_work("active", "merge")
            assert (merged["merged"], merged["kept"]) == (1, 0)
            assert await read_dlq(c.bus, "standby-dlq") == []
            standby = c.hosts["standby"]
            assert await has_run(standby, late_id, "from-active")
            assert not await has_run(standby, late_id, "from-other")  # purged: never applied

    asyncio.run(main())


def test_admin_dlq_merge_with_source_cluster_asks_the_server(tmp_path: Path) -> None:
    """``cadenza admin dlq merge --source-cluster`` reaches the server's replication DLQ; without it,
    the command still needs ``--bus`` and ``--topic``."""
    log = (tmp_path / "replication.bus").resolve()
    dc = tmp_path / "dc.yaml"
    dc.write_text("history.replicationDLQRetryIntervalSeconds:\n  - value: 3600\n")
    standby = DevServer(
        [
            "--cluster", "standby", "--replication-log", str(log),
            "--db-filename", str(tmp_path / "standby.db"), "--dynamic-config-file", str(dc),
        ]
    ).start()  # fmt: skip
    try:

        async def publish() -> None:
            bus = EmbeddedBus(log)
            try:
                await produce(bus, SOURCE, b"ns/poisoned", b"garbage in the active cluster's topic")
            finally:
                await bus.close()

        asyncio.run(publish())
        deadline = time.monotonic() + 30
        while not _dlq_read(log, "standby-dlq"):
            assert time.monotonic() < deadline, "not dead-lettered within 30 s"
            time.sleep(0.2)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*cadenza_argv(), "admin", "dlq", *args],
                capture_output=True, text=True, env=env(), timeout=60,
            )  # fmt: skip

        proc = cli("merge")
        assert proc.returncode != 0 and "missing --bus and --topic (or give --source-cluster)" in proc.stderr
        proc = cli("merge", "--source-cluster", "other", "--address", standby.address, "-o", "json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["merged"] == 0
        proc = cli("merge", "--source-cluster", "active", "--address", standby.address, "-o", "json")
        assert proc.returncode == 0, proc.stderr
        # Garbage can never apply: it is parked for a person, and the DLQ is empty.
        assert json.loads(proc.stdout) == {
            "merged": 0,
            "purged": 0,
            "parked": 1,
            "still_failing": 0,
            "kept": 0,
        }
        assert _dlq_read(log, "standby-dlq") == []
        assert [r["key"] for r in _dlq_read(log, "standby-dlq-parked")] == ["ns/poisoned"]
        proc = cli("purge", "--source-cluster", "mars", "--yes", "--address", standby.address)
        assert proc.returncode == 1 and "source_cluster 'mars' is not a cluster" in proc.stderr
    finally:
        assert standby.stop() == 0, standby.stderr()[-3000:]
