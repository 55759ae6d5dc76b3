"""The versioned schema directories (``schema/versioned/v<N>/manifest.json``) and
``cadenza admin cassandra setup-schema|update-schema`` on them: setup from empty, update from an
older version in order, a dry run that changes nothing, and re-runs that change nothing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza.engine.persistence.cassandra import SCHEMA_VERSION, CassandraSession, read_schema_version
from cadenza.engine.persistence.cassandra.schema import packaged_schema, pending_steps, schema_steps
from cadenza.ops.cli import _register, cli

from .support import fresh_keyspace_name


def _tree(tmp_path: Path) -> Path:
    """The packaged versions plus two newer ones: v2 adds a table, v3 a column to it."""
    root = tmp_path / "versioned"
    shutil.copytree(str(packaged_schema()), root)
    top = SCHEMA_VERSION
    steps = {
        top + 1: ("add schema_probe", "CREATE TABLE IF NOT EXISTS schema_probe (id int PRIMARY KEY);"),
        top + 2: ("schema_probe.note", "ALTER TABLE schema_probe ADD note text;"),
    }
    for version, (description, cql) in steps.items():
        d = root / f"v{version}"
        d.mkdir()
        (d / "01_probe.cql").write_text(f"-- {description}\n{cql}\n")
        (d / "manifest.json").write_text(
            json.dumps(
                {
                    "CurrVersion": version,
                    "MinCompatibleVersion": 1,
                    "Description": description,
                    "SchemaUpdateCqlFiles": ["01_probe.cql"],
                }
            )
        )
    return root


def test_the_packaged_versions_end_at_the_build_version() -> None:
    steps = schema_steps()
    assert [s.version for s in steps] == list(range(1, SCHEMA_VERSION + 1))
    assert all(s.statements and s.description for s in steps)


def test_a_cql_file_the_manifest_does_not_list_is_an_error(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "v1" / "99_stray.cql").write_text("CREATE TABLE IF NOT EXISTS stray (id int PRIMARY KEY);\n")
    with pytest.raises(
        ValueError, match=r"v1/manifest.json: 99_stray.cql not listed in SchemaUpdateCqlFiles"
    ):
        schema_steps(root)  # type: ignore[arg-type]


def test_a_manifest_whose_version_differs_from_its_directory_is_an_error(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    manifest = root / f"v{SCHEMA_VERSION + 1}" / "manifest.json"
    manifest.write_text(
        manifest.read_text().replace(f'"CurrVersion": {SCHEMA_VERSION + 1}', '"CurrVersion": 7')
    )
    with pytest.raises(ValueError, match="CurrVersion 7 differs from the directory's"):
        schema_steps(root)  # type: ignore[arg-type]


def test_an_unknown_target_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema version 99 does not exist \\(versions: 1"):
        pending_steps(None, 99)


# -- against the dev Cassandra -------------------------------------------------------------------------


@pytest.fixture
def keyspace(cassandra_contact: tuple[str, int]) -> Iterator[str]:
    """A fresh keyspace name, dropped at the end."""
    name = fresh_keyspace_name("cadenza_versions")
    yield name
    host, port = cassandra_contact
    db = CassandraSession.connect([host], port, "system", consistency="ONE", serial_consistency="SERIAL")
    try:
        db.session.execute(f"DROP KEYSPACE IF EXISTS {name}")
    finally:
        db.close_blocking()


def _admin(args: list[str], contact: tuple[str, int]) -> tuple[int, str]:
    _register()  # as `cadenza` does: mounts `admin cassandra`
    result = CliRunner().invoke(
        cli, ["admin", "cassandra", *args, "--hosts", contact[0], "--port", str(contact[1])]
    )
    return result.exit_code, result.output


def _state(contact: tuple[str, int], keyspace: str) -> tuple[int | None, list[int], set[str]]:
    """The recorded version, the versions in the update history, and the keyspace's tables."""
    db = CassandraSession.connect(
        [contact[0]], contact[1], "system", consistency="ONE", serial_consistency="SERIAL"
    )
    try:
        version = read_schema_version(db.session, keyspace)
        history = sorted(
            r["new_version"]
            for r in db.session.execute(f"SELECT new_version FROM {keyspace}.schema_update_history")
        )
        tables = {
            r["table_name"]
            for r in db.session.execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
            )
        }
        return version, history, tables
    finally:
        db.close_blocking()


@pytest.mark.cassandra
def test_setup_from_empty_brings_the_keyspace_to_the_build_version(
    cassandra_contact: tuple[str, int], keyspace: str
) -> None:
    code, out = _admin(
        ["setup-schema", "--keyspace", keyspace, "--replication-factor", "1"], cassandra_contact
    )
    assert code == 0 and f"schema version none -> {SCHEMA_VERSION}" in out, out
    version, history, tables = _state(cassandra_contact, keyspace)
    assert version == SCHEMA_VERSION and history == list(range(1, SCHEMA_VERSION + 1))
    assert {"executions", "history_node", "namespaces", "tasks", "schema_version"} <= tables
    again = _admin(["setup-schema", "--keyspace", keyspace], cassandra_contact)
    assert again[0] == 0 and "already up to date" in again[1], again
    assert _state(cassandra_contact, keyspace)[1] == history  # the re-run recorded no step


@pytest.mark.cassandra
def test_update_applies_the_missing_versions_in_order_and_a_dry_run_changes_nothing(
    cassandra_contact: tuple[str, int], keyspace: str, tmp_path: Path
) -> None:
    root = str(_tree(tmp_path))
    top = SCHEMA_VERSION
    code, out = _admin(
        ["setup-schema", "--keyspace", keyspace, "--schema-dir", root, "--version", str(top)],
        cassandra_contact,
    )
    assert code == 0, out

    code, out = _admin(
        [
            "update-schema",
            "--keyspace",
            keyspace,
            "--schema-dir",
            root,
            "--version",
            str(top + 2),
            "--dry-run",
        ],
        cassandra_contact,
    )
    assert code == 0, out
    assert f"-- v{top + 1}: add schema_probe" in out and "CREATE TABLE IF NOT EXISTS schema_probe" in out
    assert out.index(f"-- v{top + 1}") < out.index(f"-- v{top + 2}") and "nothing changed" in out
    version, history, tables = _state(cassandra_contact, keyspace)
    assert version == top and "schema_probe" not in tables and max(history) == top

    code, out = _admin(
        [
            "update-schema",
            "--keyspace",
            keyspace,
            "--schema-dir",
            root,
            "--version",
            str(top + 2),
            "-o",
            "json",
        ],
        cassandra_contact,
    )
    assert code == 0, out
    assert json.loads(out) == {"keyspace": keyspace, "previous_version": top, "version": top + 2}
    version, history, tables = _state(cassandra_contact, keyspace)
    assert version == top + 2 and "schema_probe" in tables
    assert history[-2:] == [top + 1, top + 2]

    code, out = _admin(
        ["update-schema", "--keyspace", keyspace, "--schema-dir", root, "--version", str(top + 2)],
        cassandra_contact,
    )
    assert code == 0 and "already up to date" in out, out
    assert _state(cassandra_contact, keyspace)[1] == history


@pytest.mark.cassandra
def test_update_of_a_missing_keyspace_names_setup_schema(
    cassandra_contact: tuple[str, int], keyspace: str
) -> None:
    code, out = _admin(["update-schema", "--keyspace", keyspace, "--dry-run"], cassandra_contact)
    assert code == 1 and f"cadenza admin cassandra setup-schema --keyspace {keyspace}" in out, out


@pytest.mark.cassandra
def test_the_config_names_the_keyspace_and_its_contact_points(
    cassandra_contact: tuple[str, int], keyspace: str, tmp_path: Path
) -> None:
    import yaml  # type: ignore[import-untyped]

    config = tmp_path / "server.yaml"
    store = {"hosts": cassandra_contact[0], "port": cassandra_contact[1], "keyspace": keyspace}
    config.write_text(
        yaml.safe_dump({"persistence": {"defaultStore": "c", "datastores": {"c": {"cassandra": store}}}})
    )
    _register()
    runner = CliRunner()
    result = runner.invoke(cli, ["admin", "cassandra", "setup-schema", "--config", str(config)])
    assert result.exit_code == 0 and f"keyspace {keyspace}: schema version none" in result.output, (
        result.output
    )
    assert _state(cassandra_contact, keyspace)[0] == SCHEMA_VERSION
    dry = runner.invoke(cli, ["admin", "cassandra", "update-schema", "--config", str(config), "--dry-run"])
    assert dry.exit_code == 0 and "already up to date" in dry.output, dry.output
    # Both at once would leave it unclear which keyspace is meant: refused, nothing touched.
    both = runner.invoke(
        cli, ["admin", "cassandra", "update-schema", "--config", str(config), "--keyspace", "other"]
    )
    assert both.exit_code == 2 and "give --config or --keyspace, not both" in both.output, both.output
    sqlite = tmp_path / "sqlite.yaml"
    sqlite.write_text(
        yaml.safe_dump(
            {
                "persistence": {
                    "defaultStore": "s",
                    "datastores": {"s": {"sqlite": {"databaseName": ":memory:"}}},
                }
            }
        )
    )
    wrong = runner.invoke(cli, ["admin", "cassandra", "setup-schema", "--config", str(sqlite)])
    assert wrong.exit_code == 1 and "defaultStore 's' is not a cassandra datastore" in wrong.output, (
        wrong.output
    )


def test_without_config_or_keyspace_the_command_says_what_to_give() -> None:
    _register()
    result = CliRunner().invoke(cli, ["admin", "cassandra", "update-schema", "--dry-run"])
    assert result.exit_code == 2 and "give --keyspace (or --config" in result.output, result.output
