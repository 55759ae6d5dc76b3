"""``setup-schema`` and ``update-schema`` for Cassandra keyspaces, as click commands.

They are meant to be mounted under ``cadenza admin``; ``schema_commands`` lists them, and
``schema_group`` bundles them for standalone use::

    cadenza admin setup-schema --store cassandra --keyspace cadenza_active --replication-factor 1 \\
        --hosts 127.0.0.1 --port 19042
    cadenza admin update-schema --store cassandra --keyspace cadenza_active --hosts 127.0.0.1 --port 19042
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ..errors import PersistenceError
from .schema import SCHEMA_VERSION, read_schema_version, setup_schema, update_schema
from .session import CassandraSession

F = Callable[..., Any]


def _connection_options(fn: F) -> F:
    options = [
        click.option(
            "--store",
            type=click.Choice(["cassandra"]),
            default="cassandra",
            show_default=True,
            help="Persistence backend whose schema to manage.",
        ),
        click.option("--keyspace", required=True, help="Keyspace to manage, e.g. cadenza_active."),
        click.option(
            "--hosts",
            default="127.0.0.1",
            show_default=True,
            envvar="CADENZA_CASSANDRA_HOSTS",
            help="Comma-separated contact points.",
        ),
        click.option("--port", type=int, default=9042, show_default=True, envvar="CADENZA_CASSANDRA_PORT"),
        click.option("--user", default=None, envvar="CADENZA_CASSANDRA_USER"),
        click.option("--password", default=None, envvar="CADENZA_CASSANDRA_PASSWORD"),
        click.option(
            "--version",
            "target_version",
            type=int,
            default=SCHEMA_VERSION,
            show_default=True,
            help="Schema version to bring the keyspace to.",
        ),
        click.option(
            "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _connect(
    hosts: str, port: int, keyspace: str, user: str | None, password: str | None
) -> CassandraSession:
    host_list = [h.strip() for h in hosts.split(",") if h.strip()]
    try:
        # DDL and the version row are written at QUORUM: schema steps must reach a majority.
        return CassandraSession.connect(
            host_list,
            port,
            keyspace,
            user=user,
            password=password,
            consistency="QUORUM",
            serial_consistency="SERIAL",
        )
    except (PersistenceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _report(output: str, keyspace: str, before: int | None, after: int) -> None:
    if output == "json":
        click.echo(json.dumps({"keyspace": keyspace, "previous_version": before, "version": after}))
    elif before == after:
        click.echo(f"keyspace {keyspace}: schema version {after} (already up to date)")
    else:
        click.echo(f"keyspace {keyspace}: schema version {before or 'none'} -> {after}")


@click.command("setup-schema")
@_connection_options
@click.option("--replication-factor", type=int, default=1, show_default=True, help="Replicas of each row.")
@click.option("--datacenter", default=None, help="Use NetworkTopologyStrategy with the replicas in this DC.")
def setup_schema_command(
    store: str,
    keyspace: str,
    hosts: str,
    port: int,
    user: str | None,
    password: str | None,
    target_version: int,
    output: str,
    replication_factor: int,
    datacenter: str | None,
) -> None:
    """Create a keyspace (if missing) with Cadenza's tables, and record its schema version."""
    db = _connect(hosts, port, keyspace, user, password)
    try:
        before = read_schema_version(db.session, keyspace, db.where)
        after = setup_schema(
            db, keyspace, replication_factor=replication_factor, datacenter=datacenter, version=target_version
        )
    except (PersistenceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.close_blocking()
    _report(output, keyspace, before, after)


@click.command("update-schema")
@_connection_options
def update_schema_command(
    store: str,
    keyspace: str,
    hosts: str,
    port: int,
    user: str | None,
    password: str | None,
    target_version: int,
    output: str,
) -> None:
    """Bring an existing keyspace's schema up to this build's version."""
    db = _connect(hosts, port, keyspace, user, password)
    try:
        before = read_schema_version(db.session, keyspace, db.where)
        after = update_schema(db, keyspace, version=target_version)
    except (PersistenceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.close_blocking()
    _report(output, keyspace, before, after)


schema_commands: list[click.Command] = [setup_schema_command, update_schema_command]
"""The commands to mount under ``cadenza admin``."""


@click.group("schema")
def schema_group() -> None:
    """Manage Cadenza's Cassandra keyspace schemas."""


for _command in schema_commands:
    schema_group.add_command(_command)
