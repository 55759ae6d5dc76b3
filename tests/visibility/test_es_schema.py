"""`cadenza admin elasticsearch setup-index|update-index` on the dev Elasticsearch: setup from empty,
update of an index made from an older template, a dry run that changes nothing, idempotent re-runs.
Each test works on its own index (and template), deleted at the end."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch

from cadenza.ops.cli import _register, cli
from cadenza.visibility.es_store import TEMPLATE_VERSION, index_template

pytestmark = pytest.mark.elasticsearch


@pytest.fixture
def index(elasticsearch_url: str) -> Iterator[str]:
    name = f"cadenza_schema_{uuid.uuid4().hex[:8]}"
    yield name
    client = Elasticsearch(elasticsearch_url)
    try:
        client.indices.delete(index=name, ignore_unavailable=True)
        client.options(ignore_status=404).indices.delete_index_template(name=name)
    finally:
        client.close()


def _admin(args: list[str]) -> tuple[int, str]:
    _register()
    result = CliRunner().invoke(cli, ["admin", "elasticsearch", *args])
    return result.exit_code, result.output


def _state(url: str, index: str) -> tuple[int | None, set[str]]:
    client = Elasticsearch(url)
    try:
        found = client.indices.get_index_template(name=index)["index_templates"]
        version = found[0]["index_template"].get("version") if found else None
        fields = set(client.indices.get_mapping(index=index)[index]["mappings"].get("properties", {}))
        return version, fields
    finally:
        client.close()


def test_setup_from_empty_then_again_changes_nothing(
    elasticsearch_url: str, index: str, tmp_path: Path
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        "persistence:\n  defaultStore: db\n  advancedVisibilityStore: es\n  datastores:\n"
        "    db: {sqlite: {}}\n"
        f"    es: {{elasticsearch: {{url: '{elasticsearch_url}', indices: {{visibility: {index}}}}}}}\n"
    )
    code, out = _admin(["setup-index", "--config", str(config)])
    assert code == 0 and f"template version none -> {TEMPLATE_VERSION}" in out, out
    version, fields = _state(elasticsearch_url, index)
    assert version == TEMPLATE_VERSION and {"WorkflowId", "TaskQueue", "CloseTime"} <= fields
    code, out = _admin(["setup-index", "--url", elasticsearch_url, "--index", index])
    assert code == 0 and "already up to date" in out, out


def test_update_of_an_index_from_an_older_template(elasticsearch_url: str, index: str) -> None:
    # The index as an older build made it: template version 0, without the TaskQueue field.
    old = index_template(index)
    old["version"] = 0
    del old["template"]["mappings"]["properties"]["TaskQueue"]
    client = Elasticsearch(elasticsearch_url)
    try:
        client.indices.put_index_template(name=index, **old)
        client.indices.create(index=index)
    finally:
        client.close()
    args = ["update-index", "--url", elasticsearch_url, "--index", index]

    code, out = _admin([*args, "--dry-run"])
    assert code == 0, out
    assert f"template version 0 would go to {TEMPLATE_VERSION}; fields added: TaskQueue; dry run" in out
    version, fields = _state(elasticsearch_url, index)
    assert version == 0 and "TaskQueue" not in fields

    code, out = _admin([*args, "-o", "json"])
    assert code == 0, out
    assert json.loads(out) == {
        "index": index,
        "previous_version": 0,
        "version": TEMPLATE_VERSION,
        "added_fields": ["TaskQueue"],
        "dry_run": False,
    }
    version, fields = _state(elasticsearch_url, index)
    assert version == TEMPLATE_VERSION and "TaskQueue" in fields

    code, out = _admin(args)
    assert code == 0 and "already up to date" in out, out


def test_update_of_a_missing_index_names_setup_index(elasticsearch_url: str, index: str) -> None:
    code, out = _admin(["update-index", "--url", elasticsearch_url, "--index", index, "--dry-run"])
    assert code == 1 and f"cadenza admin elasticsearch setup-index --index {index}" in out, out
