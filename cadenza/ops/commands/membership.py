"""`cadenza admin membership`: the processes of the cluster as its membership table has them."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

import click

from cadenza.ops.commands.common import (
    connect,
    connection_options,
    pop_settings,
    print_json,
    print_table,
    run,
)
from cadenza.schemas.service import ROLES


@click.group()
def membership() -> None:
    """The cluster's processes: each role of each process, its address and its last heartbeat."""


def _time(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


@membership.command("list")
@click.option("--role", type=click.Choice(ROLES), help="Only the members of this role")
@connection_options
@click.pass_context
def list_members(ctx: click.Context, role: str | None, **conn: Any) -> None:
    """The live members (whose heartbeats are current), by role and host: the anchors'
    ``admin membership list_db``."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            members = await client.service.list_cluster_members(role or "")  # type: ignore[attr-defined]
        if s.output == "json":
            print_json([dataclasses.asdict(m) for m in members])
            return
        now_us = time.time_ns() // 1000
        print_table(
            ("ROLE", "HOST", "ADDRESS", "SESSION START", "LAST HEARTBEAT"),
            [
                (
                    m.role,
                    m.host_id,
                    m.rpc_address,
                    _time(m.session_start),
                    f"{max(0.0, (now_us - m.last_heartbeat) / 1e6):.1f}s ago",
                )
                for m in members
            ],
        )

    run(s, go())
