"""`cadenza admin elasticsearch setup-index|update-index` and `cadenza admin kafka create-topics`: the
Elasticsearch and Kafka halves of the schema tools (Cassandra's are `cadenza admin cassandra`,
beside the store in ``cadenza.engine.persistence.cassandra.cli``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from cadenza.ops.commands.common import fail

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Server config: take the URL, credentials and index of its Elasticsearch visibility store",
)


@click.group("elasticsearch")
def elasticsearch() -> None:
    """The visibility index: setup-index, update-index [--dry-run]."""


def _es_target(config_path: Path | None, url: str | None, index: str | None) -> tuple[Any, str, str]:
    """The client, URL and index to work on: from the config's visibility store, or the options."""
    from elasticsearch import Elasticsearch

    from cadenza.ops.config import ConfigError, load_config

    if config_path is None:
        return (
            Elasticsearch(url or "http://127.0.0.1:19200"),
            url or "http://127.0.0.1:19200",
            index or "cadenza_visibility_v1",
        )
    if url or index:
        fail("give --config, or --url and --index, not both")
    try:
        config = load_config(config_path)
    except ConfigError as e:
        fail(str(e))
    p = config.persistence
    name = p.visibility_store_name()
    es = p.datastores[name].elasticsearch if name is not None else None
    if es is None:
        fail(f"{config_path}: persistence has no elasticsearch visibility store (advancedVisibilityStore)")
    if es.username is not None and es.password is not None:
        client = Elasticsearch(es.url_text(), basic_auth=(es.username, es.password))
    else:
        client = Elasticsearch(es.url_text())
    return client, es.url_text(), es.indices.visibility


_URL = click.option("--url", default=None, help="Elasticsearch URL [default: http://127.0.0.1:19200]")
_INDEX = click.option("--index", default=None, help="Visibility index [default: cadenza_visibility_v1]")
_OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)


@elasticsearch.command("setup-index")
@_CONFIG
@_URL
@_INDEX
@_OUTPUT
def setup_index_command(config_path: Path | None, url: str | None, index: str | None, output: str) -> None:
    """Put the versioned index template and create the visibility index, with the dev search
    attributes; running it again changes nothing."""
    from cadenza.visibility.es_schema import setup_index
    from cadenza.visibility.es_store import TEMPLATE_VERSION, ElasticsearchVisibilityStore
    from cadenza.visibility.pipeline import DEV_SEARCH_ATTRIBUTES

    client, where, name = _es_target(config_path, url, index)

    async def go() -> Any:
        before = await setup_index(client, name)
        store = await ElasticsearchVisibilityStore.open(client, index=name, setup=False)
        await store.add_search_attributes(DEV_SEARCH_ATTRIBUTES)
        return before

    try:
        before = asyncio.run(go())
    except Exception as e:
        fail(f"setting up index {name} on {where} failed: {e}")
    finally:
        client.close()
    if output == "json":
        click.echo(
            json.dumps(
                {"index": name, "previous_version": before.template_version, "version": TEMPLATE_VERSION}
            )
        )
    elif before.up_to_date:
        click.echo(f"index {name} on {where}: template version {TEMPLATE_VERSION} (already up to date)")
    else:
        click.echo(f"index {name} on {where}: template version {_was(before)} -> {TEMPLATE_VERSION}")


@elasticsearch.command("update-index")
@_CONFIG
@_URL
@_INDEX
@_OUTPUT
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
def update_index_command(
    config_path: Path | None, url: str | None, index: str | None, output: str, dry_run: bool
) -> None:
    """Bring an existing visibility index to this build's template: a newer template version and
    the fields the index lacks."""
    from cadenza.visibility.es_schema import update_index
    from cadenza.visibility.es_store import TEMPLATE_VERSION

    client, where, name = _es_target(config_path, url, index)
    try:
        before = asyncio.run(update_index(client, name, dry_run=dry_run))
    except Exception as e:
        fail(f"updating index {name} on {where} failed: {e}")
    finally:
        client.close()
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "index": name,
                    "previous_version": before.template_version,
                    "version": TEMPLATE_VERSION,
                    "added_fields": list(before.missing_fields),
                    "dry_run": dry_run,
                }
            )
        )
        return
    if before.up_to_date:
        click.echo(f"index {name} on {where}: template version {TEMPLATE_VERSION} (already up to date)")
        return
    fields = ", ".join(before.missing_fields) or "none"
    verb = "would go" if dry_run else "went"
    click.echo(
        f"index {name} on {where}: template version {_was(before)} {verb} to "
        f"{TEMPLATE_VERSION}; fields added: {fields}" + ("; dry run, nothing changed" if dry_run else "")
    )


def _was(status: Any) -> str:
    return "none" if status.template_version is None else str(status.template_version)


@click.group("kafka")
def kafka() -> None:
    """Kafka topics: create-topics."""


@kafka.command("create-topics")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Server config whose kafka.topics to create (with their partitions and replicas)",
)
@click.option(
    "--partitions", type=int, default=4, show_default=True, help="When the config declares no topics"
)
@click.option("--bus", "bus_url", default=None, help="Create them on this bus instead (sqlite:///path)")
def create_topics_command(config_path: Path, partitions: int, bus_url: str | None) -> None:
    """Create every topic the config's kafka block declares that is missing, on the Kafka cluster
    each names (with kafka.tls); existing topics are left as they are."""
    from cadenza.ops.commands.admin import _kafka_topics_from_config
    from cadenza.ops.config import ConfigError

    try:
        click.echo(asyncio.run(_kafka_topics_from_config(config_path, partitions, bus_url)))
    except (ConfigError, click.ClickException) as e:
        fail(str(e.message if isinstance(e, click.ClickException) else e))
    except Exception as e:
        fail(f"creating the topics of {config_path} failed: {e}")
