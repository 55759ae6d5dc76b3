"""`cadenza admin`: cluster-level operations (search attributes, schemas, dead-letter queues)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from cadenza.ops.commands.common import (
    AliasedGroup,
    connect,
    connection_options,
    fail,
    pop_settings,
    print_json,
    print_table,
    run,
)


@click.group(cls=AliasedGroup)
def admin() -> None:
    """Operate the cluster: schemas, search attributes, dead-letter queues."""


@admin.group()
def cluster() -> None:
    """Cluster-wide settings."""


@cluster.command("add-search-attributes")
@click.option("--name", "names", multiple=True, required=True, help="Attribute name; repeat for more")
@click.option(
    "--type",
    "types",
    multiple=True,
    required=True,
    help="Keyword, Text, Int, Double, Bool, Datetime or KeywordList, one per --name",
)
@connection_options
@click.pass_context
def add_search_attributes(
    ctx: click.Context, names: tuple[str, ...], types: tuple[str, ...], **conn: Any
) -> None:
    """Register custom search attributes (workflows may then set them and queries filter on them)."""
    s = pop_settings(ctx, conn)
    if len(names) != len(types):
        fail(f"give one --type per --name ({len(names)} names, {len(types)} types)")

    async def go() -> None:
        async with connect(s) as client:
            await client.service.add_search_attributes(dict(zip(names, types, strict=True)))  # type: ignore[attr-defined]
        if s.output == "json":
            print_json({"added": dict(zip(names, types, strict=True))})
        else:
            click.echo(f"Added {', '.join(names)}.")

    run(s, go())


@cluster.command("get-search-attributes")
@connection_options
@click.pass_context
def get_search_attributes(ctx: click.Context, **conn: Any) -> None:
    """List the search attributes queries can use, with their types."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            attrs = await client.service.get_search_attributes()  # type: ignore[attr-defined]
        if s.output == "json":
            print_json(attrs)
        else:
            print_table(("NAME", "TYPE"), sorted(attrs.items()))

    run(s, go())


@admin.command("setup-schema")
@click.option("--store", type=click.Choice(["kafka", "elasticsearch"]), required=True)
@click.option("--bootstrap", default="127.0.0.1:19092", show_default=True, help="Kafka bootstrap servers")
@click.option("--partitions", type=int, default=4, show_default=True)
@click.option("--url", default="http://127.0.0.1:19200", show_default=True, help="Elasticsearch URL")
@click.option("--index", default="cadenza_visibility_v1", show_default=True)
def setup_schema(store: str, bootstrap: str, partitions: int, url: str, index: str) -> None:
    """Create the visibility topics on Kafka, or the visibility index template and index on Elasticsearch.

    Cassandra keyspaces have their own command (`cadenza admin cassandra setup-schema`)."""

    async def go() -> str:
        if store == "kafka":
            from cadenza.engine.bus.kafka import KafkaBus
            from cadenza.visibility.pipeline import VISIBILITY_DLQ_TOPIC, VISIBILITY_TOPIC, ensure_topics

            bus = KafkaBus(bootstrap)
            try:
                await ensure_topics(bus, partitions=partitions)
            finally:
                await bus.close()
            return f"topics {VISIBILITY_TOPIC} and {VISIBILITY_DLQ_TOPIC} ready on {bootstrap}"
        from cadenza.visibility.es_store import ElasticsearchVisibilityStore
        from cadenza.visibility.pipeline import DEV_SEARCH_ATTRIBUTES

        es = await ElasticsearchVisibilityStore.open(url, index=index, setup=True)
        try:
            await es.add_search_attributes(DEV_SEARCH_ATTRIBUTES)
        finally:
            await es.close()
        return f"index {index} ready on {url}"

    try:
        click.echo(asyncio.run(go()))
    except Exception as e:
        fail(f"setting up {store} failed: {e}")


def register(root: click.Group) -> None:
    """Mounts `admin` with the command groups that live beside the code they drive."""
    from cadenza.engine.bus.cli import dlq, topics

    admin.add_command(dlq)
    admin.add_command(topics, name="kafka-topics")
    try:
        from cadenza.engine.persistence.cassandra import cli as cassandra_cli
    except ImportError:  # the cassandra-driver extra is not installed
        cassandra_cli = None  # type: ignore[assignment]
    group = getattr(cassandra_cli, "schema", None)
    if isinstance(group, click.Group):
        admin.add_command(group, name="cassandra")
    root.add_command(admin)
