"""Keyspace schema: setup and update commands, side-by-side keyspaces, and the errors that name the fix."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from cadenza.engine.persistence import EntityNotFoundError, NamespaceRow, StoreUnavailableError
from cadenza.engine.persistence.cassandra import (
    SCHEMA_VERSION,
    CassandraSchemaError,
    CassandraSession,
    open_cassandra_stores,
)
from cadenza.engine.persistence.cassandra.cli import schema_commands, schema_group

from .support import fresh_keyspace_name

pytestmark = pytest.mark.cassandra


@pytest.fixture
def admin(cassandra_contact: tuple[str, int]) -> Iterator[CassandraSession]:
    """A session for poking at keyspaces; drops every keyspace named ``cadenza_schema_*`` it made."""
    host, port = cassandra_contact
    db = CassandraSession.connect([host], port, "system", consistency="ONE", serial_consistency="SERIAL")
    made: list[str] = []
    db.made = made  # type: ignore[attr-defined]
    yield db
    for name in made:
        db.session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    db.close_blocking()


def _new_name(admin: CassandraSession, prefix: str = "cadenza_schema") -> str:
    name = fresh_keyspace_name(prefix)
    admin.made.append(name)  # type: ignore[attr-defined]
    return name


def _cli(args: list[str], contact: tuple[str, int]) -> tuple[int, str]:
    host, port = contact
    result = CliRunner().invoke(schema_group, [*args, "--hosts", host, "--port", str(port)])
    return result.exit_code, result.output


def _open(contact: tuple[str, int], keyspace: str):  # type: ignore[no-untyped-def]
    return open_cassandra_stores(
        [contact[0]], contact[1], keyspace, consistency="ONE", serial_consistency="SERIAL"
    )


def test_every_command_has_help() -> None:
    for command in schema_commands:
        result = CliRunner().invoke(schema_group, [command.name or "", "--help"])
        assert result.exit_code == 0 and "--keyspace" in result.output and "--schema-dir" in result.output


def test_missing_keyspace_names_the_setup_command(cassandra_contact: tuple[str, int]) -> None:
    name = fresh_keyspace_name("cadenza_absent")
    with pytest.raises(CassandraSchemaError) as err:
        _open(cassandra_contact, name)
    msg = str(err.value)
    assert f"{name!r}" in msg and "does not exist" in msg
    host, port = cassandra_contact
    assert f"cadenza admin cassandra setup-schema --keyspace {name} --hosts {host} --port {port}" in msg


def test_keyspace_without_schema_names_the_setup_command(
    admin: CassandraSession, cassandra_contact: tuple[str, int]
) -> None:
    name = _new_name(admin)
    admin.session.execute(
        f"CREATE KEYSPACE {name} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )
    with pytest.raises(CassandraSchemaError) as err:
        _open(cassandra_contact, name)
    assert "has no Cadenza schema" in str(err.value)
    assert f"cadenza admin cassandra setup-schema --keyspace {name}" in str(err.value)


def test_older_schema_names_the_update_command_which_fixes_it(
    admin: CassandraSession, cassandra_contact: tuple[str, int]
) -> None:
    name = _new_name(admin)
    code, out = _cli(["setup-schema", "--keyspace", name], cassandra_contact)
    assert code == 0, out
    admin.session.execute(f"UPDATE {name}.schema_version SET curr_version = 0 WHERE keyspace_name = '{name}'")
    with pytest.raises(CassandraSchemaError) as err:
        _open(cassandra_contact, name)
    msg = str(err.value)
    assert f"schema version 0, this build needs version {SCHEMA_VERSION}" in msg
    assert f"cadenza admin cassandra update-schema --keyspace {name}" in msg
    assert err.value.found == 0 and err.value.required == SCHEMA_VERSION

    code, out = _cli(["update-schema", "--keyspace", name, "-o", "json"], cassandra_contact)
    assert code == 0, out
    assert json.loads(out) == {"keyspace": name, "previous_version": 0, "version": SCHEMA_VERSION}
    asyncio.run(_open(cassandra_contact, name).close())


def test_newer_schema_is_refused(admin: CassandraSession, cassandra_contact: tuple[str, int]) -> None:
    name = _new_name(admin)
    assert _cli(["setup-schema", "--keyspace", name], cassandra_contact)[0] == 0
    admin.session.execute(
        f"UPDATE {name}.schema_version SET curr_version = 99 WHERE keyspace_name = '{name}'"
    )
    with pytest.raises(CassandraSchemaError, match="schema version 99, newer than"):
        _open(cassandra_contact, name)


def test_setup_is_idempotent_and_keyspaces_live_side_by_side(
    admin: CassandraSession, cassandra_contact: tuple[str, int]
) -> None:
    active, standby = _new_name(admin, "cadenza_active"), _new_name(admin, "cadenza_standby")
    for name in (active, standby):
        code, out = _cli(
            ["setup-schema", "--keyspace", name, "--replication-factor", "1"],
            cassandra_contact,
        )
        assert code == 0 and f"-> {SCHEMA_VERSION}" in out, out
    code, out = _cli(["setup-schema", "--keyspace", active], cassandra_contact)
    assert code == 0 and "already up to date" in out, out

    async def main() -> None:
        a, s = _open(cassandra_contact, active), _open(cassandra_contact, standby)
        try:
            await a.namespaces.create_namespace(NamespaceRow(id="ns-1", name="only-in-active", data=b"x"))
            assert (await a.namespaces.get_namespace(name="only-in-active")).id == "ns-1"
            with pytest.raises(EntityNotFoundError):
                await s.namespaces.get_namespace(name="only-in-active")
            shard_a = await a.shards.acquire_shard(0, "active-host")
            shard_s = await s.shards.acquire_shard(0, "standby-host")
            assert shard_a.range_id == shard_s.range_id == 1
        finally:
            await a.close()
            await s.close()

    asyncio.run(main())


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_cassandra_is_one_clear_error_naming_the_hosts() -> None:
    port = _closed_port()
    with pytest.raises(StoreUnavailableError) as err:
        open_cassandra_stores(["127.0.0.1"], port, "cadenza")
    assert f"cannot reach Cassandra at 127.0.0.1:{port}" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no driver traceback chained


def test_cli_reports_an_unreachable_cassandra_and_exits_non_zero() -> None:
    port = _closed_port()
    code, out = _cli(["setup-schema", "--keyspace", "cadenza_x"], ("127.0.0.1", port))
    assert code == 1 and f"cannot reach Cassandra at 127.0.0.1:{port}" in out
    assert "Traceback" not in out


def test_invalid_keyspace_name_is_refused(cassandra_contact: tuple[str, int]) -> None:
    code, out = _cli(["setup-schema", "--keyspace", "bad-name; DROP"], cassandra_contact)
    assert code == 1 and "invalid keyspace name" in out
