"""``cadenza admin dlq read|purge|merge`` and ``cadenza admin topics``: click commands to mount.

The bus is chosen by ``--bus URL`` (env ``CADENZA_BUS``): ``kafka://127.0.0.1:19092`` or
``sqlite:///var/lib/cadenza/cadenza.db``. Tables are for people, ``-o json`` for scripts; errors go
to stderr with exit code 1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import open_bus
from .dlq import merge_dlq, purge_dlq, read_dlq
from .errors import BusError
from .protocol import Bus
from .topology import KafkaTopology, setup_topics

T = TypeVar("T")
CONTEXT = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "CADENZA"}

bus_option = click.option(
    "--bus",
    "bus_url",
    envvar="CADENZA_BUS",
    required=True,
    help="kafka://host:port[,...] or sqlite:///path (env CADENZA_BUS).",
)
topic_option = click.option("--topic", required=True, help="The DLQ topic, e.g. cadenza-visibility-dlq.")
partition_option = click.option("--partition", type=int, default=None, help="Only this DLQ partition.")
output_option = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)


def _run(bus_url: str, action: Callable[[Bus], Awaitable[T]]) -> T:
    async def main() -> T:
        bus = open_bus(bus_url)
        try:
            return await action(bus)
        finally:
            await bus.close()

    try:
        return asyncio.run(main())
    except (BusError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(context_settings=CONTEXT)
def dlq() -> None:
    """Read, purge or re-drive the messages consumers dead-lettered."""


@dlq.command("read")
@bus_option
@topic_option
@partition_option
@click.option("--limit", type=int, default=100, show_default=True)
@click.option(
    "--source-cluster",
    "--source-topic",
    "source",
    default=None,
    help="Only messages that came from this topic: a replication DLQ (<cluster>-dlq) holds what the "
    "cluster could not apply from every other cluster, each from the topic named after its cluster.",
)
@output_option
def read_command(
    bus_url: str, topic: str, partition: int | None, limit: int, source: str | None, output: str
) -> None:
    """List the messages still in a DLQ: offset, key, error, attempts, source."""

    async def read(bus: Bus) -> list[Any]:
        if source is None:
            return await read_dlq(bus, topic, limit=limit, partition=partition)
        everything = await read_dlq(bus, topic, limit=1 << 30, partition=partition)
        return [letter for letter in everything if letter.source_topic == source][:limit]

    letters = _run(bus_url, read)
    rows = [letter.as_json() for letter in letters]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    columns = ["partition", "offset", "key", "attempts", "source", "error"]
    table = [[str(row[c]) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in table)]) for i, c in enumerate(columns)]
    widths[-1] = len(columns[-1])  # the error column is last and never padded
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if not rows:
        click.echo(f"(no messages in {topic})", err=True)


@dlq.command("purge")
@bus_option
@topic_option
@partition_option
@click.option("--up-to", type=int, default=None, help="Drop messages through this offset (inclusive).")
@click.option("--all", "everything", is_flag=True, help="Drop every message.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge_command(
    bus_url: str, topic: str, partition: int | None, up_to: int | None, everything: bool, yes: bool
) -> None:
    """Drop dead-lettered messages (they are not re-driven)."""
    if (up_to is None) == (not everything):
        raise click.UsageError("give exactly one of --up-to OFFSET and --all")
    what = "every message" if everything else f"messages through offset {up_to}"
    if not yes:
        click.confirm(f"Drop {what} of {topic}?", abort=True)
    dropped = _run(bus_url, lambda bus: purge_dlq(bus, topic, up_to=up_to, partition=partition))
    click.echo(f"purged {dropped} message(s) from {topic}")


@dlq.command("merge")
@bus_option
@topic_option
@partition_option
@click.option("--up-to", type=int, default=None, help="Re-drive messages through this offset (inclusive).")
@output_option
def merge_command(bus_url: str, topic: str, partition: int | None, up_to: int | None, output: str) -> None:
    """Move messages back to their source topics, each exactly once (safe to re-run after a crash)."""
    result = _run(bus_url, lambda bus: merge_dlq(bus, topic, up_to=up_to, partition=partition))
    if output == "json":
        click.echo(json.dumps({"merged": result.merged, "skipped": result.skipped}))
    else:
        note = f" ({result.skipped} already merged by an interrupted run)" if result.skipped else ""
        click.echo(f"merged {result.merged} message(s) from {topic}{note}")


def load_topology(path: Path) -> KafkaTopology:
    """The ``kafka:`` block of a server config file (YAML or JSON)."""
    text = path.read_text(encoding="utf-8")
    data: Any
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        import yaml  # type: ignore[import-untyped]  # PyYAML; only the config loader needs it

        data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("kafka"), dict):
        raise BusError(f"{path}: no kafka: block")
    return KafkaTopology.from_mapping(data["kafka"], source=str(path))


@click.command("topics", context_settings=CONTEXT)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Server config file with a kafka: block.",
)
@click.option(
    "--bus",
    "bus_url",
    envvar="CADENZA_BUS",
    default=None,
    help="Create them on this bus instead of the configured Kafka clusters (e.g. sqlite:///...).",
)
@click.option("--dry-run", is_flag=True, help="Only print the topics that would be created.")
def topics(config_path: Path, bus_url: str | None, dry_run: bool) -> None:
    """Create the configured topics (replication per cluster, visibility, their DLQs)."""
    try:
        topology = load_topology(config_path)
    except (BusError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if dry_run:
        for cluster, specs in topology.topic_specs().items():
            for spec in specs:
                click.echo(
                    f"{cluster}\t{spec.name}\tpartitions={spec.partitions}\t"
                    f"replicas={spec.replication_factor}"
                )
        return
    if bus_url:
        created = _run(bus_url, lambda bus: setup_topics(topology, bus=bus))
    else:
        try:
            created = asyncio.run(setup_topics(topology))
        except BusError as exc:
            raise click.ClickException(str(exc)) from exc
    for cluster, names in created.items():
        click.echo(f"{cluster}: created {', '.join(names) if names else 'nothing (all exist)'}")
