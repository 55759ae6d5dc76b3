"""Cassandra 5 from `cadenza dev services`, through cassandra-driver as the product uses it."""

from __future__ import annotations

import uuid

import pytest
from cassandra.cluster import Cluster

pytestmark = pytest.mark.cassandra


def test_keyspace_table_and_lightweight_transaction(cassandra_contact: tuple[str, int]) -> None:
    host, port = cassandra_contact
    cluster = Cluster([host], port=port)
    keyspace = f"cadenza_smoke_{uuid.uuid4().hex[:12]}"
    try:
        session = cluster.connect()
        version = session.execute("SELECT release_version FROM system.local").one()
        assert version is not None and version.release_version.startswith("5.0")
        session.execute(
            f"CREATE KEYSPACE {keyspace}"
            " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(
            f"CREATE TABLE {keyspace}.executions (workflow_id text, run_id uuid, state text,"
            " PRIMARY KEY (workflow_id, run_id))"
        )
        insert = session.prepare(
            f"INSERT INTO {keyspace}.executions (workflow_id, run_id, state) VALUES (?, ?, ?) IF NOT EXISTS"
        )
        run_id = uuid.uuid4()
        first = session.execute(insert, ("wf-1", run_id, "running"))
        assert first.was_applied is True
        second = session.execute(insert, ("wf-1", run_id, "completed"))
        assert second.was_applied is False
        # A rejected LWT returns the row that won.
        assert second.one().state == "running"
        row = session.execute(f"SELECT state FROM {keyspace}.executions WHERE workflow_id = 'wf-1'").one()
        assert row.state == "running"
        session.execute(f"DROP KEYSPACE {keyspace}")
    finally:
        cluster.shutdown()
