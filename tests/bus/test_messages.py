"""Bus messages: round trips, released schema versions still decoding, clear errors on bad bytes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cadenza.engine.bus.errors import MessageDecodeError
from cadenza.engine.bus.messages import (
    REPLICATION_SCHEMA,
    VISIBILITY_SCHEMA,
    NamespaceOperation,
    NamespaceReplication,
    ReplicationMessage,
    ReplicationTaskType,
    SyncActivity,
    VersionHistoryItem,
    VisibilityMessage,
    VisibilityMessageType,
    bus_registry,
    decode_message,
    decode_replication,
    decode_visibility,
    encode_replication,
    encode_visibility,
)
from cadenza.engine.bus.protocol import workflow_key
from cadenza.schemas.codec import encode_events
from cadenza.schemas.events import EventType, HistoryEvent

FIXTURES = Path(__file__).with_name("fixtures")
PAYLOAD = {"metadata": {"encoding": b"json/plain"}, "data": b'"c-9"'}


def test_visibility_message_round_trips_with_every_field() -> None:
    message = VisibilityMessage(
        namespace_id="ns",
        workflow_id="wf",
        run_id="r",
        task_id=9,
        message_type=VisibilityMessageType.DELETE,
        workflow_type="T",
        start_time=1,
        execution_time=2,
        close_time=3,
        status=2,
        history_length=11,
        task_queue="q",
        search_attributes={"a": PAYLOAD},
        memo={"m": PAYLOAD},
    )
    data = encode_visibility(message)
    assert data[:2] == b"\xc3\x01"
    assert decode_visibility(data) == message
    assert decode_message(data) == message
    assert message.key == workflow_key("ns", "wf")


def test_replication_message_round_trips_for_each_task_type() -> None:
    events = encode_events([HistoryEvent(1, 1_000, EventType.WORKFLOW_EXECUTION_STARTED, 1, 5, {})])
    messages = [
        ReplicationMessage(
            namespace_id="ns",
            workflow_id="wf",
            run_id="r",
            task_id=1,
            task_type=ReplicationTaskType.HISTORY,
            version_history=[VersionHistoryItem(1, 1)],
            first_event_id=1,
            next_event_id=2,
            events=events,
        ),
        ReplicationMessage(
            namespace_id="ns",
            workflow_id="wf",
            run_id="r",
            task_id=2,
            task_type=ReplicationTaskType.SYNC_ACTIVITY,
            activity=SyncActivity(version=1, scheduled_event_id=5, attempt=3, details=b"d"),
        ),
        ReplicationMessage(
            namespace_id="ns",
            task_id=3,
            task_type=ReplicationTaskType.NAMESPACE,
            namespace=NamespaceReplication(
                operation=NamespaceOperation.UPDATE,
                id="ns",
                name="orders",
                clusters=["a", "b"],
                active_cluster_name="b",
                failover_version=12,
            ),
        ),
    ]
    for message in messages:
        assert decode_replication(encode_replication(message)) == message
        assert decode_message(encode_replication(message)) == message
        # The hand-built record (no deep copy per message) writes what the generic path writes.
        assert encode_replication(message) == bus_registry().encode(
            REPLICATION_SCHEMA, dataclasses.asdict(message)
        )


def test_a_v0_visibility_message_still_decodes_with_defaults_for_newer_fields() -> None:
    data = (FIXTURES / "visibility_v0.bin").read_bytes()
    assert bus_registry().writer_of(data).version == 0
    message = decode_visibility(data)
    assert message == VisibilityMessage(
        namespace_id="ns-1",
        workflow_id="order-42",
        run_id="run-7",
        task_id=1001,
        workflow_type="OrderWorkflow",
        start_time=1_700_000_000_000_000,
        status=1,
        search_attributes={"CustomerId": PAYLOAD},
    )
    newer = (message.execution_time, message.history_length, message.task_queue, message.memo)
    assert newer == (0, 0, "", {})


def test_the_v0_schema_still_writes_the_fixture_bytes() -> None:
    # Pins the released v0 schema: editing it in place would change its fingerprint or encoding.
    record = {
        "namespace_id": "ns-1",
        "workflow_id": "order-42",
        "run_id": "run-7",
        "task_id": 1001,
        "message_type": "UPSERT",
        "workflow_type": "OrderWorkflow",
        "start_time": 1_700_000_000_000_000,
        "close_time": None,
        "status": 1,
        "search_attributes": {"CustomerId": PAYLOAD},
    }
    data = bus_registry().encode(VISIBILITY_SCHEMA, record, version=0)
    assert data == (FIXTURES / "visibility_v0.bin").read_bytes()


def test_an_unknown_fingerprint_is_a_clear_error() -> None:
    data = b"\xc3\x01" + bytes(8) + b"\x00"
    with pytest.raises(MessageDecodeError, match="unknown schema fingerprint 0x0000000000000000"):
        decode_visibility(data)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "truncated single-object header"),
        (b'{"json": true}', "not Avro single-object encoded"),
    ],
)
def test_garbage_is_a_clear_error(data: bytes, reason: str) -> None:
    with pytest.raises(MessageDecodeError, match=reason):
        decode_message(data)


def test_a_replication_message_is_not_read_as_a_visibility_message() -> None:
    data = encode_replication(
        ReplicationMessage(namespace_id="ns", task_id=1, task_type=ReplicationTaskType.NAMESPACE)
    )
    with pytest.raises(MessageDecodeError, match=r"bytes hold a io\.cadenza\.bus\.v1\.ReplicationMessage"):
        decode_visibility(data)


def test_a_v1_replication_message_still_decodes_with_an_empty_failover_history() -> None:
    # Clusters are upgraded one at a time: a cluster on this build reads what an older one sent.
    data = (FIXTURES / "replication_v1.bin").read_bytes()
    assert bus_registry().writer_of(data).version == 1
    message = decode_replication(data)
    assert message.namespace is not None
    assert (message.namespace.name, message.namespace.active_cluster_name) == ("video", "standby")
    assert message.namespace.failover_history == []
    assert message.namespace.failover_version == 2
