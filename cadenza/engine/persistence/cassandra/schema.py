"""Versioned keyspace schema: ``setup_schema``, ``update_schema`` and the check done at open.

The CQL lives in ``schema/versioned/v<N>/`` in this package, as the anchors' ``cassandra-tool``
lays it out: each version directory has a ``manifest.json``::

    {"CurrVersion": 2, "MinCompatibleVersion": 1, "Description": "...",
     "SchemaUpdateCqlFiles": ["01_add_x.cql"]}

and the CQL files it lists, applied in the listed order; a ``.cql`` file the manifest does not list
is an error (never silently skipped). Every statement is idempotent (``IF NOT EXISTS``), so re-running
a version after a failure is safe. Versions are whole numbers (the keyspaces' ``curr_version`` column
is an int). The keyspace records what it holds in ``schema_version`` (one row per keyspace: the
current version and the oldest version a reader may still be) and every step in
``schema_update_history``.

Stores refuse to open a keyspace whose schema is missing, older or newer than this build's, with a
message that names the keyspace, the versions and the command that fixes it.
"""

from __future__ import annotations

import json
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

SCHEMA_VERSION = 2
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
    description: str = ""
    min_compatible_version: int = MIN_COMPATIBLE_VERSION
    files: tuple[str, ...] = ()


def admin_command(action: str, keyspace: str, hosts: Sequence[str] | str, port: int) -> str:
    host_list = hosts if isinstance(hosts, str) else ",".join(hosts)
    return f"cadenza admin cassandra {action} --keyspace {keyspace} --hosts {host_list} --port {port}"


def split_statements(text: str) -> list[str]:
    """Statements of a CQL file: ``--`` comments dropped, split on ``;`` at line ends."""
    lines = [line.split("--", 1)[0].rstrip() for line in text.splitlines()]
    body = "\n".join(line for line in lines if line.strip())
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def packaged_schema() -> Traversable:
    """The ``versioned`` directory shipped with this build."""
    return resources.files(__package__).joinpath("schema", "versioned")


def schema_steps(root: Traversable | None = None) -> list[SchemaStep]:
    """Every schema version under ``root`` (default: the packaged one), oldest first; raises
    ``ValueError`` naming the directory and the problem when a manifest is missing or wrong."""
    base = root or packaged_schema()
    steps = []
    for entry in base.iterdir():
        match = _VERSION_DIR.match(entry.name)
        if not entry.is_dir():
            continue
        if not match:
            raise ValueError(f"{entry}: a schema version directory is named v<N> (v1, v2, ...)")
        steps.append(_read_step(entry, int(match.group(1))))
    return sorted(steps, key=lambda s: s.version)


def _read_step(directory: Traversable, version: int) -> SchemaStep:
    where = f"{directory}/manifest.json"
    try:
        manifest = json.loads(directory.joinpath("manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{where}: cannot read the manifest: {e}") from None
    expected = {"CurrVersion", "MinCompatibleVersion", "Description", "SchemaUpdateCqlFiles"}
    if not isinstance(manifest, dict) or set(manifest) != expected:
        raise ValueError(f"{where}: needs exactly the keys {', '.join(sorted(expected))}")
    if manifest["CurrVersion"] != version:
        raise ValueError(
            f"{where}: CurrVersion {manifest['CurrVersion']!r} differs from the directory's {version}"
        )
    minimum = manifest["MinCompatibleVersion"]
    if not isinstance(minimum, int) or not 1 <= minimum <= version:
        raise ValueError(f"{where}: MinCompatibleVersion {minimum!r} must be from 1 to {version}")
    listed = manifest["SchemaUpdateCqlFiles"]
    present = {f.name for f in directory.iterdir() if f.name.endswith(".cql")}
    if not isinstance(listed, list) or not listed or not all(isinstance(f, str) for f in listed):
        raise ValueError(f"{where}: SchemaUpdateCqlFiles must list the version's CQL files")
    if missing := [f for f in listed if f not in present]:
        raise ValueError(f"{where}: SchemaUpdateCqlFiles names missing files: {', '.join(missing)}")
    if unlisted := sorted(present - set(listed)):
        raise ValueError(f"{where}: {', '.join(unlisted)} not listed in SchemaUpdateCqlFiles")
    statements = tuple(s for name in listed for s in split_statements(directory.joinpath(name).read_text()))
    return SchemaStep(version, statements, str(manifest["Description"]), minimum, tuple(listed))


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


_ADD_COLUMN = re.compile(r"^\s*ALTER\s+TABLE\s+\S+\s+ADD\s", re.IGNORECASE)


def _run_step_statement(session: Session, cql: str, where: str) -> None:
    """Runs one statement of a schema step. A step can run again over what it made (an update
    cut short and retried, a version row set back by hand): ``CREATE ... IF NOT EXISTS`` is
    idempotent by itself, and an ``ALTER TABLE ... ADD`` whose column exists already (Cassandra
    before 5.0 has no ``ADD IF NOT EXISTS``) counts as done."""
    try:
        session.execute(cql)
    except InvalidRequest as exc:
        if _ADD_COLUMN.match(cql) and "already exists" in str(exc):
            return
        raise translate_error(exc, where) from None
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


def pending_steps(current: int | None, target: int, root: Traversable | None = None) -> list[SchemaStep]:
    """The versions above ``current`` up to ``target``, in order; raises ``ValueError`` when
    ``target`` is not a packaged version."""
    steps = schema_steps(root)
    if target not in {s.version for s in steps}:
        known = ", ".join(str(s.version) for s in steps)
        raise ValueError(f"schema version {target} does not exist (versions: {known})")
    return [s for s in steps if (current or 0) < s.version <= target]


def _apply_steps(
    session: Session, keyspace: str, where: str, start: int | None, target: int, root: Traversable | None
) -> int:
    old = start or 0
    for step in pending_steps(start, target, root):
        for statement in step.statements:
            _run_step_statement(session, _qualify(statement, keyspace), where)
        now = time.time()
        _run(
            session,
            f"INSERT INTO {keyspace}.schema_version (keyspace_name, creation_time, curr_version, "
            "min_compatible_version) VALUES (%s, %s, %s, %s)",
            (keyspace, int(now * 1e6), step.version, step.min_compatible_version),
            where,
        )
        day = time.gmtime(now)
        _run(
            session,
            f"INSERT INTO {keyspace}.schema_update_history (year, month, update_time, description, "
            "new_version, old_version) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                day.tm_year,
                day.tm_mon,
                uuid.uuid1(),
                step.description or f"schema v{step.version}",
                step.version,
                old,
            ),
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
    root: Traversable | None = None,
) -> int:
    """Creates the keyspace (if missing) and applies every schema version up to ``version``.

    ``datacenter`` selects NetworkTopologyStrategy with ``replication_factor`` replicas in that data
    centre; without it SimpleStrategy is used (single data centre, development). Returns the version
    the keyspace is at afterwards. Idempotent: on an up-to-date keyspace it changes nothing.
    ``root`` replaces the packaged ``versioned`` directory (tests, and schemas of a newer build).
    """
    check_keyspace_name(keyspace)
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be at least 1 (got {replication_factor})")
    pending_steps(None, version, root)  # an unknown target is refused before the keyspace is made
    session, where = _session_of(target)
    if datacenter:
        replication = f"{{'class': 'NetworkTopologyStrategy', '{datacenter}': {replication_factor}}}"
    else:
        replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    _run(session, f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}", where=where)
    _create_version_tables(session, keyspace, where)
    return _apply_steps(
        session, keyspace, where, read_schema_version(session, keyspace, where), version, root
    )


def update_schema(
    target: Session | CassandraSession,
    keyspace: str,
    *,
    version: int = SCHEMA_VERSION,
    root: Traversable | None = None,
    dry_run: bool = False,
) -> tuple[int | None, list[SchemaStep]]:
    """Brings an existing keyspace from its recorded version up to ``version``, applying each
    missing version in order. Returns the version it was at and the steps applied; with
    ``dry_run``, the steps that would be applied, and nothing is changed."""
    check_keyspace_name(keyspace)
    session, where = _session_of(target)
    if session.cluster.metadata.keyspaces.get(keyspace) is None:
        raise CassandraSchemaError(
            f"Cassandra keyspace {keyspace!r} does not exist at {where}; create it with "
            f"`cadenza admin cassandra setup-schema --keyspace {keyspace}`",
            keyspace=keyspace,
            found=None,
            required=version,
        )
    current = read_schema_version(session, keyspace, where)
    if current is not None and current > version:
        raise CassandraSchemaError(
            f"Cassandra keyspace {keyspace!r} is at schema version {current}, newer than {version}",
            keyspace=keyspace,
            found=current,
            required=version,
        )
    steps = pending_steps(current, version, root)
    if not dry_run:
        _create_version_tables(session, keyspace, where)
        _apply_steps(session, keyspace, where, current, version, root)
    return current, steps


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
