"""``setup-schema`` and ``update-schema`` for Cassandra keyspaces, as click commands.

``schema_group`` is mounted as ``cadenza admin cassandra``::

    cadenza admin cassandra setup-schema --keyspace cadenza_active --replication-factor 1 \\
        --hosts 127.0.0.1 --port 19042
    cadenza admin cassandra update-schema --keyspace cadenza_active --hosts 127.0.0.1 --port 19042 [--dry-run]
    cadenza admin cassandra update-schema --config config/production.yaml   # its defaultStore

With ``--config`` the contact points, port, keyspace, user and password come from the server
config's ``defaultStore`` (a cassandra datastore), so the tool works on exactly what the server
will open; an option given beside it is refused rather than silently preferred.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import PersistenceError
from .schema import SCHEMA_VERSION, SchemaStep, read_schema_version, setup_schema, update_schema
from .session import CassandraSession

F = Callable[..., Any]


def _connection_options(fn: F) -> F:
    options = [
        click.option(
            "--config",
            "config_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="Server config: take hosts, port, keyspace, user and password from its defaultStore.",
        ),
        click.option("--keyspace", default=None, help="Keyspace to manage, e.g. cadenza_active."),
        click.option(
            "--hosts",
            default=None,
            envvar="CADENZA_CASSANDRA_HOSTS",
            help="Comma-separated contact points.  [default: 127.0.0.1]",
        ),
        click.option(
            "--port", type=int, default=None, envvar="CADENZA_CASSANDRA_PORT", help="[default: 9042]"
        ),
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
            "--schema-dir",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            default=None,
            help="A versioned schema directory (v1/, v2/, ... each with manifest.json) instead of "
            "this build's.",
        ),
        click.option(
            "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _target(
    config_path: Path | None,
    keyspace: str | None,
    hosts: str | None,
    port: int | None,
    user: str | None,
    password: str | None,
) -> tuple[list[str], int, str, str | None, str | None]:
    """Contact points, port, keyspace, user and password: from the config's ``defaultStore``, or
    from the options (with their defaults)."""
    if config_path is None:
        if not keyspace:
            raise click.UsageError("give --keyspace (or --config with a cassandra defaultStore)")
        host_list = [h.strip() for h in (hosts or "127.0.0.1").split(",") if h.strip()]
        return host_list, port or 9042, keyspace, user, password
    given = [
        name
        for name, value in (
            ("--keyspace", keyspace),
            ("--hosts", hosts),
            ("--port", port),
            ("--user", user),
            ("--password", password),
        )
        if value is not None
    ]
    if given:
        raise click.UsageError(f"give --config or {', '.join(given)}, not both")
    from cadenza.ops.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    name = config.persistence.defaultStore
    store = config.persistence.datastores[name].cassandra
    if store is None:
        raise click.ClickException(
            f"{config_path}: persistence.defaultStore {name!r} is not a cassandra datastore"
        )
    return store.host_list(), store.port, store.keyspace, store.user, store.password


def _connect(
    host_list: list[str], port: int, keyspace: str, user: str | None, password: str | None
) -> CassandraSession:
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
        click.echo(f"keyspace {keyspace}: schema version {'none' if before is None else before} -> {after}")


@click.command("setup-schema")
@_connection_options
@click.option("--replication-factor", type=int, default=1, show_default=True, help="Replicas of each row.")
@click.option("--datacenter", default=None, help="Use NetworkTopologyStrategy with the replicas in this DC.")
def setup_schema_command(
    config_path: Path | None,
    keyspace: str | None,
    hosts: str | None,
    port: int | None,
    user: str | None,
    password: str | None,
    target_version: int,
    schema_dir: Path | None,
    output: str,
    replication_factor: int,
    datacenter: str | None,
) -> None:
    """Create a keyspace (if missing) with Cadenza's tables, and record its schema version.

    Running it again on an up-to-date keyspace changes nothing."""
    if replication_factor < 1:
        raise click.BadParameter(
            f"must be at least 1 (got {replication_factor})", param_hint="--replication-factor"
        )
    host_list, port_number, keyspace, user, password = _target(
        config_path, keyspace, hosts, port, user, password
    )
    db = _connect(host_list, port_number, keyspace, user, password)
    try:
        before = read_schema_version(db.session, keyspace, db.where)
        after = setup_schema(
            db,
            keyspace,
            replication_factor=replication_factor,
            datacenter=datacenter,
            version=target_version,
            root=schema_dir,  # type: ignore[arg-type]  # a Path is a Traversable
        )
    except (PersistenceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.close_blocking()
    _report(output, keyspace, before, after)


@click.command("update-schema")
@_connection_options
@click.option(
    "--dry-run", is_flag=True, help="Print the versions and statements that would run; change nothing."
)
def update_schema_command(
    config_path: Path | None,
    keyspace: str | None,
    hosts: str | None,
    port: int | None,
    user: str | None,
    password: str | None,
    target_version: int,
    schema_dir: Path | None,
    output: str,
    dry_run: bool,
) -> None:
    """Apply the schema versions a keyspace is missing, in order, up to this build's version."""
    host_list, port_number, keyspace, user, password = _target(
        config_path, keyspace, hosts, port, user, password
    )
    db = _connect(host_list, port_number, keyspace, user, password)
    try:
        before, steps = update_schema(
            db,
            keyspace,
            version=target_version,
            root=schema_dir,  # type: ignore[arg-type]  # a Path is a Traversable
            dry_run=dry_run,
        )
    except (PersistenceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.close_blocking()
    if dry_run:
        _report_plan(output, keyspace, before, steps)
    else:
        _report(output, keyspace, before, steps[-1].version if steps else (before or 0))


def _report_plan(output: str, keyspace: str, before: int | None, steps: list[SchemaStep]) -> None:
    if output == "json":
        plan = [
            {"version": s.version, "description": s.description, "statements": list(s.statements)}
            for s in steps
        ]
        click.echo(json.dumps({"keyspace": keyspace, "version": before, "dry_run": True, "steps": plan}))
        return
    if not steps:
        click.echo(
            f"keyspace {keyspace}: schema version {before} (already up to date); dry run, nothing changed"
        )
        return
    was = "none" if before is None else before
    click.echo(f"keyspace {keyspace}: schema version {was}; dry run, nothing changed. Would apply:")
    for step in steps:
        click.echo(f"-- v{step.version}: {step.description} ({', '.join(step.files)})")
        for statement in step.statements:
            click.echo(f"{statement};")


schema_commands: list[click.Command] = [setup_schema_command, update_schema_command]
"""The commands to mount under ``cadenza admin``."""


@click.group("cassandra")
def schema_group() -> None:
    """Cassandra keyspace schemas: setup-schema, update-schema [--dry-run]."""


for _command in schema_commands:
    schema_group.add_command(_command)
