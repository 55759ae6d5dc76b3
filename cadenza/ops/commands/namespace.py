"""`cadenza namespace register|describe|list|update` (short: `cadenza n re|desc|l|up`), as in tctl.

The namespace a command acts on is ``--ns NAME`` (or the global ``--ns``, or ``CADENZA_NAMESPACE``);
``register`` and ``describe`` also take it as an argument. tctl's ``--cl active standby`` (clusters
separated by spaces) is accepted next to the repeatable ``--cl active --cl standby``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from cadenza.ops.commands.common import (
    AliasedGroup,
    connect,
    connection_options,
    pop_settings,
    print_fields,
    print_json,
    print_table,
    run,
)
from cadenza.schemas.service import NamespaceInfo


@click.group("namespace", cls=AliasedGroup)
def namespace() -> None:
    """Register, describe, list and update namespaces (alias: n; register is also re)."""


namespace_group: AliasedGroup = namespace  # type: ignore[assignment]


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("true", "t", "yes", "y", "1"):
        return True
    if v in ("false", "f", "no", "n", "0"):
        return False
    raise click.BadParameter(f"expected true or false, got {value!r}", param_hint="--global-namespace")


def _data(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--data")
        out[key] = value
    return out


def _name_and_clusters(
    s_namespace: str, explicit: bool, args: tuple[str, ...], clusters: tuple[str, ...]
) -> tuple[str, list[str]]:
    """tctl puts clusters after ``--cl`` separated by spaces; click sees the later ones as arguments."""
    rest = list(args)
    name = s_namespace
    if not explicit and rest:
        name = rest.pop(0)
    if rest and not clusters:
        raise click.UsageError(f"unexpected arguments: {' '.join(rest)}")
    return name, [*clusters, *rest]


def _info_dict(info: NamespaceInfo) -> dict[str, Any]:
    return asdict(info)


_ARCHIVAL_STATES = click.Choice(["enabled", "disabled"], case_sensitive=False)


def _archival_options(fn: Any) -> Any:
    """tctl's archival flags; unset ones keep the current value (at register: the cluster's
    ``namespaceDefaults.archival``)."""
    for opt in reversed(
        [
            click.option(
                "--history-archival-state",
                "--has",
                "history_archival_state",
                type=_ARCHIVAL_STATES,
                default=None,
                help="Archive closed runs' histories when retention deletes them",
            ),
            click.option(
                "--history-uri",
                "--huri",
                "history_uri",
                default=None,
                help="Where histories are archived: file:///absolute/dir (cannot change once set)",
            ),
            click.option(
                "--visibility-archival-state",
                "--vas",
                "visibility_archival_state",
                type=_ARCHIVAL_STATES,
                default=None,
                help="Archive closed runs' visibility records when retention deletes them",
            ),
            click.option(
                "--visibility-uri",
                "--vuri",
                "visibility_uri",
                default=None,
                help="Where visibility records are archived: file:///absolute/dir (cannot change once set)",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


def _apply_archival_flags(into: dict[str, Any], conn: dict[str, Any]) -> None:
    for flag in ("history_archival_state", "history_uri", "visibility_archival_state", "visibility_uri"):
        into[flag] = conn.pop(flag, None)


def _apply_archival(info: NamespaceInfo, conn: dict[str, Any]) -> None:
    """Moves the archival flags out of ``conn`` onto ``info``; the server checks them."""
    for flag, field_name in (
        ("history_archival_state", "history_archival_state"),
        ("history_uri", "history_archival_uri"),
        ("visibility_archival_state", "visibility_archival_state"),
        ("visibility_uri", "visibility_archival_uri"),
    ):
        value = conn.pop(flag, None)
        if value is not None:
            setattr(info, field_name, value.lower() if field_name.endswith("state") else value)


def _show(info: NamespaceInfo, output: str) -> None:
    if output == "json":
        print_json(_info_dict(info))
        return
    print_fields(
        [
            ("Name", info.name),
            ("Id", info.id),
            ("Description", info.description),
            ("OwnerEmail", info.owner_email),
            ("RetentionDays", info.retention_days),
            ("State", info.state),
            ("IsGlobalNamespace", info.is_global),
            ("ActiveClusterName", info.active_cluster),
            ("Clusters", ", ".join(info.clusters)),
            ("FailoverVersion", info.failover_version),
            ("FailoverHistory", "; ".join(info.failover_history) or "-"),
            ("Data", ", ".join(f"{k}={v}" for k, v in info.data.items())),
            ("HistoryArchivalState", info.history_archival_state or "disabled"),
            ("HistoryArchivalURI", info.history_archival_uri or "-"),
            ("VisibilityArchivalState", info.visibility_archival_state or "disabled"),
            ("VisibilityArchivalURI", info.visibility_archival_uri or "-"),
        ]
    )


@namespace.command("register")
@click.argument("args", nargs=-1)
@click.option("--description", "--desc", default="", help="What the namespace is for")
@click.option("--owner-email", "--oe", default="", help="Owner's email")
@click.option(
    "--retention",
    "--rd",
    "retention",
    type=int,
    default=3,
    show_default=True,
    help="Days closed workflows are kept",
)
@click.option("--global-namespace", "--gd", "is_global", default=None, help="true for a global namespace")
@click.option("--clusters", "--cl", "clusters", multiple=True, help="Clusters of a global namespace")
@click.option("--active-cluster", "--ac", default="", help="Active cluster of a global namespace")
@click.option("--data", multiple=True, help="KEY=VALUE data, repeatable")
@_archival_options
@connection_options
@click.pass_context
def register(
    ctx: click.Context,
    args: tuple[str, ...],
    description: str,
    owner_email: str,
    retention: int,
    is_global: str | None,
    clusters: tuple[str, ...],
    active_cluster: str,
    data: tuple[str, ...],
    **conn: Any,
) -> None:
    """Register a namespace: `cadenza n re --ns NAME` or `cadenza namespace register NAME`."""
    archival: dict[str, Any] = {}
    _apply_archival_flags(archival, conn)
    explicit = conn.get("namespace") is not None
    s = pop_settings(ctx, conn)
    name, all_clusters = _name_and_clusters(s.namespace, explicit, args, clusters)
    info = NamespaceInfo(
        name=name,
        id="",
        description=description,
        owner_email=owner_email,
        retention_days=retention,
        is_global=bool(_bool(is_global)),
        clusters=all_clusters,
        active_cluster=active_cluster,
        data=_data(data),
    )
    _apply_archival(info, archival)

    async def go() -> None:
        async with connect(s) as client:
            await client.service.register_namespace(info)
            registered = await client.service.describe_namespace(name)
        if s.output == "json":
            print_json(_info_dict(registered))
        else:
            click.echo(f"Namespace {name} successfully registered.")

    run(s, go())


@namespace.command("describe")
@click.argument("name", required=False)
@connection_options
@click.pass_context
def describe(ctx: click.Context, name: str | None, **conn: Any) -> None:
    """Show a namespace's settings."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            _show(await client.service.describe_namespace(name or s.namespace), s.output)

    run(s, go())


@namespace.command("list")
@connection_options
@click.pass_context
def list_(ctx: click.Context, **conn: Any) -> None:
    """List every namespace."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            infos = await client.service.list_namespaces()
        if s.output == "json":
            print_json([_info_dict(i) for i in infos])
            return
        print_table(
            ("NAME", "ID", "STATE", "RETENTION (DAYS)", "GLOBAL", "ACTIVE CLUSTER", "DESCRIPTION"),
            [
                (i.name, i.id, i.state, i.retention_days, i.is_global, i.active_cluster, i.description)
                for i in infos
            ],
        )

    run(s, go())


@namespace.command("update")
@click.argument("args", nargs=-1)
@click.option("--description", "--desc", default=None, help="New description")
@click.option("--owner-email", "--oe", default=None, help="New owner email")
@click.option("--retention", "--rd", "retention", type=int, default=None, help="New retention in days")
@click.option("--clusters", "--cl", "clusters", multiple=True, help="New cluster list")
@click.option("--active-cluster", "--ac", default=None, help="Fail over to this cluster")
@click.option("--data", multiple=True, help="KEY=VALUE to set, repeatable")
@_archival_options
@connection_options
@click.pass_context
def update(
    ctx: click.Context,
    args: tuple[str, ...],
    description: str | None,
    owner_email: str | None,
    retention: int | None,
    clusters: tuple[str, ...],
    active_cluster: str | None,
    data: tuple[str, ...],
    **conn: Any,
) -> None:
    """Change a namespace's description, owner, retention, clusters, data or archival."""
    archival: dict[str, Any] = {}
    _apply_archival_flags(archival, conn)
    explicit = conn.get("namespace") is not None
    s = pop_settings(ctx, conn)
    name, all_clusters = _name_and_clusters(s.namespace, explicit, args, clusters)

    async def go() -> None:
        async with connect(s) as client:
            info = await client.service.describe_namespace(name)
            if description is not None:
                info.description = description
            if owner_email is not None:
                info.owner_email = owner_email
            if retention is not None:
                info.retention_days = retention
            if all_clusters:
                info.clusters = all_clusters
            if active_cluster is not None:
                info.active_cluster = active_cluster
            info.data = {**info.data, **_data(data)}
            _apply_archival(info, archival)
            await client.service.update_namespace(info)
            updated = await client.service.describe_namespace(name)
        if s.output == "json":
            print_json(_info_dict(updated))
        else:
            click.echo(f"Namespace {name} successfully updated.")

    run(s, go())


def _duration(value: str) -> float:
    """``60``, ``60s``, ``2m``, ``1h`` as seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    v = value.strip().lower()
    try:
        if v and v[-1] in units:
            return float(v[:-1]) * units[v[-1]]
        return float(v)
    except ValueError:
        raise click.BadParameter(f"expected a duration such as 60s or 2m, got {value!r}") from None


@namespace.command("failover")
@click.argument("args", nargs=-1)
@click.option("--to", "--target-cluster", "target", required=True, help="The cluster to make active")
@click.option(
    "--graceful",
    is_flag=True,
    help="Hand over without conflicts: stop writes here, wait until the target applied everything, "
    "then switch (run it on the active cluster); falls back to forced after --timeout",
)
@click.option("--timeout", default="60s", show_default=True, help="How long a graceful failover may wait")
@connection_options
@click.pass_context
def failover(
    ctx: click.Context, args: tuple[str, ...], target: str, graceful: bool, timeout: str, **conn: Any
) -> None:
    """Make another cluster the namespace's active cluster (forced unless --graceful)."""
    explicit = conn.get("namespace") is not None
    s = pop_settings(ctx, conn)
    name, _ = _name_and_clusters(s.namespace, explicit, args, ())
    timeout_s = _duration(timeout)

    async def go() -> None:
        async with connect(s) as client:
            r = await client.service.failover_namespace(name, target, graceful=graceful, timeout_s=timeout_s)
        if s.output == "json":
            print_json(
                {
                    "namespace": _info_dict(r.namespace),
                    "graceful": r.graceful,
                    "seconds": r.seconds,
                    "message": r.message,
                }
            )
            return
        click.echo(f"Namespace {name}: {r.message} (failover version {r.namespace.failover_version}).")
        if graceful and not r.graceful:
            click.echo("warning: the graceful failover timed out and fell back to a forced one", err=True)

    run(s, go())


namespace_group.aliases.update(
    {
        "re": "register",
        "desc": "describe",
        "d": "describe",
        "l": "list",
        "ls": "list",
        "up": "update",
        "u": "update",
        "fo": "failover",
    }
)
