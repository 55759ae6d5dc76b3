"""`cadenza task-queue` (`tq`): what the server's matching knows of a task queue, as temporal's CLI
spells it (`temporal task-queue describe --task-queue Q`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from cadenza.ops.commands.common import (
    AliasedGroup,
    connect,
    connection_options,
    fmt_time,
    pop_settings,
    print_json,
    print_table,
    run,
)

TASK_QUEUE_TYPES = ("workflow", "activity")


@click.group("task-queue", cls=AliasedGroup)
def task_queue() -> None:
    """Task queues: the workers polling them."""


@task_queue.command("describe")
@click.option("--task-queue", "-t", "name", required=True, help="Task queue name")
@click.option(
    "--task-queue-type",
    "types",
    type=click.Choice(TASK_QUEUE_TYPES),
    multiple=True,
    help="Task type to describe; repeat for both [default: both]",
)
@connection_options
@click.pass_context
def describe(ctx: click.Context, name: str, types: tuple[str, ...], **conn: Any) -> None:
    """The pollers seen on the queue in the last few minutes (identity, last access time and, for
    workflow tasks, the worker's sticky queue) and the backlog matching holds in memory."""
    s = pop_settings(ctx, conn)
    wanted = types or TASK_QUEUE_TYPES

    async def go() -> None:
        async with connect(s) as client:
            found = {
                kind: await client.service.describe_task_queue(s.namespace, name, kind)  # type: ignore[attr-defined]
                for kind in wanted
            }
        if s.output == "json":
            print_json(
                {
                    "task_queue": name,
                    **{
                        kind: {
                            "pollers": [dataclasses.asdict(p) for p in d.pollers],
                            "backlog_count_hint": d.backlog_count_hint,
                        }
                        for kind, d in found.items()
                    },
                }
            )
            return
        rows = [
            (kind, p.identity, fmt_time(p.last_access_time), p.sticky_task_queue)
            for kind, d in found.items()
            for p in d.pollers
        ]
        print_table(
            ("TYPE", "IDENTITY", "LAST ACCESS", "STICKY QUEUE"),
            rows,
            title=f"Pollers of {name}" if rows else f"Pollers of {name}: none seen in the last minutes",
        )
        backlog = ", ".join(f"{kind} {d.backlog_count_hint}" for kind, d in found.items())
        click.echo(f"Backlog in memory: {backlog}")

    run(s, go())
