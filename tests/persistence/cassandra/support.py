"""Shared Cassandra test fixtures: a fresh keyspace per test session, made with ``setup_schema``.

Tests run against the node of ``cadenza dev services up cassandra`` (address from the
``cassandra_contact`` fixture, which fails when the node does not answer). A single node: consistency
ONE, serial consistency SERIAL, replication factor 1. Import the fixtures a test module needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cadenza.engine.persistence.cassandra import CassandraSession, CassandraStores, setup_schema


@dataclass(frozen=True)
class Keyspace:
    name: str
    host: str
    port: int
    session: CassandraSession

    def stores(self) -> CassandraStores:
        """Stores on the shared session (closing them leaves the session open)."""
        return CassandraStores(self.session, close_session=False)

    def connect(self, keyspace: str | None = None) -> CassandraSession:
        """A separate session with its own connections (e.g. for a second engine host)."""
        return CassandraSession.connect(
            [self.host], self.port, keyspace or self.name, consistency="ONE", serial_consistency="SERIAL"
        )


def fresh_keyspace_name(prefix: str = "cadenza_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def make_keyspace(contact: tuple[str, int], prefix: str = "cadenza_test") -> Iterator[Keyspace]:
    host, port = contact
    name = fresh_keyspace_name(prefix)
    session = CassandraSession.connect([host], port, name, consistency="ONE", serial_consistency="SERIAL")
    try:
        setup_schema(session, name, replication_factor=1)
        yield Keyspace(name, host, port, session)
    finally:
        session.close_blocking()
    drop_keyspace(contact, name)


def drop_keyspace(contact: tuple[str, int], name: str) -> None:
    """Drops ``name`` over a fresh session (the test's own may have seen the node die)."""
    db = CassandraSession.connect(
        [contact[0]], contact[1], name, consistency="ONE", serial_consistency="SERIAL"
    )
    try:
        db.session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    finally:
        db.close_blocking()


@pytest.fixture(scope="session")
def cassandra_keyspace(cassandra_contact: tuple[str, int]) -> Iterator[Keyspace]:
    """A keyspace with the current schema, shared by the whole test session, dropped at its end."""
    yield from make_keyspace(cassandra_contact)
