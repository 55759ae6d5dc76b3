"""Versioned keyspace schema: ``setup_schema``, ``update_schema`` and the check done at open.

The CQL lives in ``schema/v<N>/*.cql`` in this package; version N's files are applied in name order
and every statement is idempotent (``IF NOT EXISTS``), so re-running a version after a failure is safe.
The keyspace records what it holds in ``schema_version`` (one row per keyspace: the current version
and the oldest version a reader may still be) and every step in ``schema_update_history``.

Stores refuse to open a keyspace whose schema is missing, older or newer than this build's, with a
message that names the keyspace, the versions and the command that fixes it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

from cassandra import InvalidRequest
from cassandra.cluster import Session

from ..errors import PersistenceError
from .session import CassandraSession, check_keyspace_name, translate_error

SCHEMA_VERSION = 1
"""The schema version this build reads and writes."""
MIN_COMPATIBLE_VERSION = 1

_VERSION_DIR = re.compile(r"^v(\d+)$")


class CassandraSchemaError(PersistenceError):
    """The keyspace has no Cadenza schema, or a version this build cannot use."""

    def __init__(self, message: str, *, keyspace: str, found: int | None, required: int) -> None:
        super().__init__(message)
        self.keyspace = keyspace
        self.found = found
        self.required = required


@dataclass(frozen=True, slots=True)
class SchemaStep:
    version: int
    statements: tuple[str, ...]


def admin_command(action: str, keyspace: str, hosts: Sequence[str] | str, port: int) -> str:
    host_list = hosts if isinstance(hosts, str) else ",".join(hosts)
    return f"cadenza admin {action} --store cassandra --keyspace {keyspace} --hosts {host_list} --port {port}"


def split_statements(text: str) -> list[str]:
    """Statements of a CQL file: ``--`` comments dropped, split on ``;`` at line ends."""
    lines = [line.split("--", 1)[0].rstrip() for line in text.splitlines()]
    body = "\n".join(line for line in lines if line.strip())
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def schema_steps(root: Traversable | None = None) -> list[SchemaStep]:
    """Every packaged schema version, oldest first."""
    base = root or resources.files(__package__).joinpath("schema")
    steps = []
    for entry in base.iterdir():
        match = _VERSION_DIR.match(entry.name)
        if not match or not entry.is_dir():
            continue
        files = sorted((f for f in entry.iterdir() if f.name.endswith(".cql")), key=lambda f: f.name)
        statements = tuple(s for f in files for s in split_statements(f.read_text()))
        steps.append(SchemaStep(int(match.group(1)), statements))
    return sorted(steps, key=lambda s: s.version)


def _qualify(statement: str, keyspace: str) -> str:
    """Names the keyspace in a packaged statement (the files name tables without one, so the same
    files serve every keyspace and external tools like cqlsh with ``USE``)."""
    return re.sub(
        r"^(CREATE TABLE IF NOT EXISTS|CREATE TYPE IF NOT EXISTS|ALTER TABLE|INSERT INTO|UPDATE|"
        r"DROP TABLE IF EXISTS|CREATE INDEX IF NOT EXISTS \w+ ON)\s+(\w+)",
        lambda m: f"{m.group(1)} {keyspace}.{m.group(2)}",
        statement,
        count=1,
    )


def _run(
    session: Session, cql: str, params: Sequence[object] = (), where: str = ""
) -> list[dict[str, object]]:
    try:
        return list(session.execute(cql, params))
    except Exception as exc:
        raise translate_error(exc, where) from None


def _create_version_tables(session: Session, keyspace: str, where: str) -> None:
    _run(
        session,
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_version (keyspace_name text PRIMARY KEY, "
        "creation_time bigint, curr_version int, min_compatible_version int)",
        where=where,
    )
    _run(
        session,
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_update_history (year int, month int, "
        "update_time timeuuid, description text, new_version int, old_version int, "
        "PRIMARY KEY ((year, month), update_time))",
        where=where,
    )


def read_schema_version(session: Session, keyspace: str, where: str = "") -> int | None:
    """The keyspace's recorded version; None when the keyspace or its schema tables are missing."""
    try:
        rows = list(
            session.execute(
                f"SELECT curr_version FROM {keyspace}.schema_version WHERE keyspace_name = %s", (keyspace,)
            )
        )
    except InvalidRequest:  # no such keyspace or table
        return None
    except Exception as exc:
        raise translate_error(exc, where) from None
    if not rows:
        return None
    row = rows[0]
    value = row["curr_version"] if isinstance(row, dict) else row.curr_version
    return None if value is None else int(value)


def _apply_steps(session: Session, keyspace: str, where: str, start: int | None, target: int) -> int:
    old = start or 0
    for step in schema_steps():
        if step.version <= old or step.version > target:
            continue
        for statement in step.statements:
            _run(session, _qualify(statement, keyspace), where=where)
        now = time.time()
        _run(
            session,
            f"INSERT INTO {keyspace}.schema_version (keyspace_name, creation_time, curr_version, "
            "min_compatible_version) VALUES (%s, %s, %s, %s)",
            (keyspace, int(now * 1e6), step.version, MIN_COMPATIBLE_VERSION),
            where,
        )
        day = time.gmtime(now)
        _run(
            session,
            f"INSERT INTO {keyspace}.schema_update_history (year, month, update_time, description, "
            "new_version, old_version) VALUES (%s, %s, %s, %s, %s, %s)",
            (day.tm_year, day.tm_mon, uuid.uuid1(), f"schema v{step.version}", step.version, old),
            where,
        )
        old = step.version
    return old


def _session_of(target: Session | CassandraSession) -> tuple[Session, str]:
    if isinstance(target, CassandraSession):
        return target.session, target.where
    hosts = ", ".join(str(h.endpoint) for h in target.cluster.metadata.all_hosts())
    return target, hosts


def setup_schema(
    target: Session | CassandraSession,
    keyspace: str,
    *,
    replication_factor: int = 1,
    datacenter: str | None = None,
    version: int = SCHEMA_VERSION,
) -> int:
    """Creates the keyspace (if missing) and applies every schema version up to ``version``.

    ``datacenter`` selects NetworkTopologyStrategy with ``replication_factor`` replicas in that data
    centre; without it SimpleStrategy is used (single data centre, development). Returns the version
    the keyspace is at afterwards. Idempotent: on an up-to-date keyspace it changes nothing.
    """
    check_keyspace_name(keyspace)
    if replication_factor < 1:
        raise ValueError("replication_factor must be at least 1")
    session, where = _session_of(target)
    if datacenter:
        replication = f"{{'class': 'NetworkTopologyStrategy', '{datacenter}': {replication_factor}}}"
    else:
        replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    _run(session, f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}", where=where)
    _create_version_tables(session, keyspace, where)
    return _apply_steps(session, keyspace, where, read_schema_version(session, keyspace, where), version)


def update_schema(target: Session | CassandraSession, keyspace: str, *, version: int = SCHEMA_VERSION) -> int:
    """Brings an existing keyspace from its recorded version up to ``version``; returns the new one."""
    check_keyspace_name(keyspace)
    session, where = _session_of(target)
    if session.cluster.metadata.keyspaces.get(keyspace) is None:
        raise CassandraSchemaError(
            f"Cassandra keyspace {keyspace!r} does not exist at {where}; create it with "
            f"`cadenza admin setup-schema --store cassandra --keyspace {keyspace}`",
            keyspace=keyspace,
            found=None,
            required=version,
        )
    _create_version_tables(session, keyspace, where)
    current = read_schema_version(session, keyspace, where)
    if current is not None and current > version:
        raise CassandraSchemaError(
            f"Cassandra keyspace {keyspace!r} is at schema version {current}, newer than {version}",
            keyspace=keyspace,
            found=current,
            required=version,
        )
    return _apply_steps(session, keyspace, where, current, version)


def check_schema(session: CassandraSession, hosts: Sequence[str] | str, port: int) -> int:
    """Raises ``CassandraSchemaError`` unless the keyspace holds a schema this build can use."""
    keyspace = session.keyspace
    found = read_schema_version(session.session, keyspace, session.where)
    if found is None:
        exists = session.session.cluster.metadata.keyspaces.get(keyspace) is not None
        what = "has no Cadenza schema" if exists else "does not exist"
        raise CassandraSchemaError(
            f"Cassandra keyspace {keyspace!r} at {session.where} {what} (this build needs schema "
            f"version {SCHEMA_VERSION}); create it with:\n  "
            f"{admin_command('setup-schema', keyspace, hosts, port)}",
            keyspace=keyspace,
            found=None,
            required=SCHEMA_VERSION,
        )
    if found < SCHEMA_VERSION:
        raise CassandraSchemaError(
            f"Cassandra keyspace {keyspace!r} at {session.where} has schema version {found}, this build "
            f"needs version {SCHEMA_VERSION}; upgrade it with:\n  "
            f"{admin_command('update-schema', keyspace, hosts, port)}",
            keyspace=keyspace,
            found=found,
            required=SCHEMA_VERSION,
        )
    if found > SCHEMA_VERSION:
        raise CassandraSchemaError(
            f"Cassandra keyspace {keyspace!r} at {session.where} has schema version {found}, newer than "
            f"this build's version {SCHEMA_VERSION}; run a newer Cadenza against it",
            keyspace=keyspace,
            found=found,
            required=SCHEMA_VERSION,
        )
    return found
