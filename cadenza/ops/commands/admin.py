"""`cadenza admin`: cluster-level operations (search attributes, schemas, dead-letter queues)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from cadenza.engine.bus.topology import KafkaTopology


@click.group(cls=AliasedGroup)
def admin() -> None:
    """Operate the cluster: schemas, search attributes, dead-letter queues, dev tokens."""


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


@cluster.command("describe")
@connection_options
@click.pass_context
def describe_cluster(ctx: click.Context, **conn: Any) -> None:
    """The clusters, each global namespace's active cluster and failover version, and replication:
    lag per source cluster (messages and seconds), DLQ depth, applier state."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            d = await client.service.describe_cluster()  # type: ignore[attr-defined]
        if s.output == "json":
            print_json(d)
            return
        current = d["current_cluster"]
        click.echo(f"Cluster {current} (master {d['master_cluster']})")
        print_table(
            ("CLUSTER", "INITIAL VERSION", "ENABLED", "ADDRESS"),
            [
                (
                    ("* " if c["name"] == current else "  ") + c["name"],
                    c["initial_failover_version"],
                    c["enabled"],
                    c["rpc_address"],
                )
                for c in d["clusters"]
            ],
        )
        if d["namespaces"]:
            click.echo()
            print_table(
                ("GLOBAL NAMESPACE", "ACTIVE CLUSTER", "FAILOVER VERSION", "CLUSTERS"),
                [
                    (
                        n["name"],
                        n["active_cluster"] + (" (handover)" if n["in_handover"] else ""),
                        n["failover_version"],
                        ", ".join(n["clusters"]),
                    )
                    for n in d["namespaces"]
                ],
            )
        r = d.get("replication")
        if r is None:
            click.echo("\nReplication: off (one cluster)")
            return
        click.echo(
            f"\nReplication: applier {r['applier']}; {r['unpublished_tasks']} tasks not yet published to "
            f"{r['topic']}; DLQ {r['dlq']['topic']}: {r['dlq']['depth']} waiting, {r['dlq']['parked']} parked"
        )
        print_table(
            ("FROM CLUSTER", "LAG (MESSAGES)", "LAG (SECONDS)", "EVENTS APPLIED"),
            [
                (
                    src["cluster"],
                    src["lag_messages"],
                    "-" if src["lag_seconds"] is None else src["lag_seconds"],
                    src["applied_events"],
                )
                for src in r["sources"]
            ],
        )

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
@click.option(
    "--partitions",
    type=int,
    default=4,
    show_default=True,
    help="Partitions of each topic (DLQs get one; the topics a config declares carry their own)",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Kafka: create every topic of this server config's kafka block (each cluster's replication "
    "topic and DLQ, visibility and its DLQ) on the brokers it names",
)
@click.option(
    "--cluster",
    "clusters",
    multiple=True,
    help="Kafka without --config: also create this replication cluster's topic and DLQ "
    "(<name>, <name>-dlq) on --bootstrap; repeat for each cluster",
)
@click.option(
    "--bus",
    "bus_url",
    default=None,
    help="Kafka: create the topics on this bus instead (sqlite:///path for the embedded log)",
)
@click.option("--url", default="http://127.0.0.1:19200", show_default=True, help="Elasticsearch URL")
@click.option("--index", default="cadenza_visibility_v1", show_default=True)
def setup_schema(
    store: str,
    bootstrap: str,
    partitions: int,
    config_path: Path | None,
    clusters: tuple[str, ...],
    bus_url: str | None,
    url: str,
    index: str,
) -> None:
    """Create the topics on Kafka (visibility, and replication with --config or --cluster), or the
    visibility index template and index on Elasticsearch.

    Existing topics are left as they are, so running it again is harmless. Cassandra keyspaces have
    their own command."""
    if store != "kafka" and (config_path or clusters or bus_url):
        fail("--config, --cluster and --bus apply to --store kafka only")
    if config_path is not None and clusters:
        fail("give --cluster only without --config (the config's kafka.cluster-topics name the clusters)")

    async def go() -> str:
        if store == "kafka":
            if config_path is not None:
                return await _kafka_topics_from_config(config_path, partitions, bus_url)
            if clusters or bus_url:
                from cadenza.engine.bus.topology import default_topology

                topology = default_topology(list(clusters), brokers=[bootstrap], partitions=partitions)
                return _created(topology, await _setup_topics(topology, bus_url), bus_url)
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


async def _kafka_topics_from_config(path: Path, partitions: int, bus_url: str | None) -> str:
    """The topics of the config's kafka block. A block that declares no topics (only the brokers
    visibility uses) gets the visibility topics, as without a config."""
    from cadenza.ops.config import load_config, settings_from_config

    config = load_config(path)
    if config.kafka is None:
        raise click.ClickException(
            f"{path}: has no kafka block; servers on it use the embedded log, which needs no topics"
        )
    topology = config.kafka
    if not topology.topics:
        from cadenza.engine.bus.topology import default_topology

        # The Kafka cluster the server sends visibility records to (settings_from_config's choice).
        brokers = settings_from_config(config, path).kafka_brokers or ""
        name = next(n for n, c in topology.clusters.items() if ",".join(c.brokers) == brokers)
        topology = default_topology([], brokers=brokers.split(","), partitions=partitions, kafka_cluster=name)
    return _created(topology, await _setup_topics(topology, bus_url), bus_url)


async def _setup_topics(topology: KafkaTopology, bus_url: str | None) -> dict[str, list[str]]:
    from cadenza.engine.bus import open_bus
    from cadenza.engine.bus.topology import setup_topics

    if bus_url is None:
        return await setup_topics(topology)
    bus = open_bus(bus_url)
    try:
        return await setup_topics(topology, bus=bus)
    finally:
        await bus.close()


def _created(topology: KafkaTopology, created: dict[str, list[str]], bus_url: str | None) -> str:
    """One line per Kafka cluster, naming where it is and the topics made now."""
    lines = []
    for cluster, names in created.items():
        where = bus_url or ",".join(topology.clusters[cluster].brokers)
        made = ", ".join(names) if names else "nothing (all exist)"
        lines.append(f"{cluster} ({where}): created {made}")
    return "\n".join(lines)


def register(root: click.Group) -> None:
    """Mounts `admin` with the command groups that live beside the code they drive."""
    from cadenza.engine.bus.cli import dlq, topics

    from .dlq import add_source_cluster
    from .membership import membership
    from .schema_tools import elasticsearch, kafka
    from .token import token

    add_source_cluster(dlq)
    admin.add_command(token)
    admin.add_command(membership)
    admin.add_command(dlq)
    admin.add_command(topics, name="kafka-topics")
    admin.add_command(elasticsearch)
    admin.add_command(kafka)
    try:
        from cadenza.engine.persistence.cassandra import cli as cassandra_cli
    except ImportError:  # the cassandra-driver extra is not installed
        cassandra_cli = None  # type: ignore[assignment]
    group = getattr(cassandra_cli, "schema_group", None)
    if isinstance(group, click.Group):
        admin.add_command(group, name="cassandra")
    root.add_command(admin)
