"""``cadenza admin dlq merge|purge --source-cluster NAME``: working a cluster's replication DLQ.

The bus-level ``dlq merge|purge --bus --topic`` (``engine/bus/cli.py``) moves a DLQ's position and
produces messages back to their source topics. That is right for the visibility DLQ, whose source
topic only this cluster's indexer reads; for replication it is not: a source topic is read by every
other cluster. So with ``--source-cluster`` the command asks the server (``--address``) to work its
own replication DLQ: merge applies the messages that came from that cluster now, in this cluster
only; purge drops them. Either way the other sources' messages stay, in order.
"""

from __future__ import annotations

from typing import Any

import click

from .common import connect, connection_options_without_output, pop_settings, print_json, print_table, run

_SOURCE = click.Option(
    ["--source-cluster"],
    default=None,
    help="Work the server's replication DLQ: only what it could not apply from this cluster "
    "(with --address; --bus and --topic are then not used).",
)


_SERVER_FIELDS = ("address", "tls_ca", "tls_cert", "tls_key", "tls_server_name", "rpc_timeout")


def add_source_cluster(group: click.Group) -> None:
    """Gives the group's ``merge`` and ``purge`` a ``--source-cluster`` that goes to the server."""
    for name in ("merge", "purge"):
        original = group.commands[name]
        group.add_command(_with_source_cluster(original, name), name)


def _with_source_cluster(original: click.Command, action: str) -> click.Command:
    params: list[click.Parameter] = []
    for p in original.params:
        if isinstance(p, click.Option) and p.name in ("bus_url", "topic"):
            p.required = False  # required again below unless --source-cluster is given
        params.append(p)
    params.append(_SOURCE)

    @connection_options_without_output
    def server_options() -> None: ...

    # Decorators collect their options in reverse; the namespace does not apply to a DLQ.
    params.extend(
        o for o in reversed(getattr(server_options, "__click_params__", [])) if o.name != "namespace"
    )

    @click.pass_context
    def callback(ctx: click.Context, **kw: Any) -> None:
        source = kw.pop("source_cluster")
        if source is None:
            for f in (
                "address",
                "namespace",
                "tls_ca",
                "tls_cert",
                "tls_key",
                "tls_server_name",
                "rpc_timeout",
            ):
                kw.pop(f, None)
            missing = [f"--{n.replace('_url', '')}" for n in ("bus_url", "topic") if not kw.get(n)]
            if missing:
                raise click.UsageError(f"missing {' and '.join(missing)} (or give --source-cluster)")
            assert original.callback is not None
            ctx.invoke(original.callback, **kw)
            return
        output = kw.get("output") or "table"
        if action == "purge" and not kw.get("yes"):
            click.confirm(f"Drop every message this cluster dead-lettered from {source!r}?", abort=True)
        s = pop_settings(ctx, kw)

        async def go() -> None:
            async with connect(s) as client:
                result = await client.service.replication_dlq_work(source, action)  # type: ignore[attr-defined]
            if output == "json":
                print_json(result)
                return
            print_table(
                ("FROM CLUSTER", *(k.upper().replace("_", " ") for k in result)), [(source, *result.values())]
            )

        run(s, go())

    return click.Command(
        name=original.name,
        params=params,
        callback=callback,
        help=(original.help or "")
        + "\n\nWith --source-cluster, the server's replication DLQ: "
        + (
            "apply now, here only, what came from that cluster."
            if action == "merge"
            else "drop what came from that cluster."
        ),
        context_settings=original.context_settings,
    )
