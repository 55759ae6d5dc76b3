"""The `cadenza` command line: one click group per area, close to tctl's layout."""

from __future__ import annotations

from typing import Any

import click

from cadenza.ops.commands.common import AliasedGroup, connection_options, root_settings


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cadenza")
@connection_options
@click.option(
    "--log-format",
    "cli_log_format",
    type=click.Choice(["text", "json"]),
    default=None,
    envvar="CADENZA_LOG_FORMAT",
    help="Format of the CLI's own log lines on stderr (json: one object per line).",
)
@click.option(
    "--auth-token",
    default=None,
    metavar="TOKEN",
    help="Bearer token for a server with authorization on (`cadenza admin token issue` mints one "
    "for a dev server) [env CADENZA_AUTH_TOKEN]",
)
@click.pass_context
def cli(ctx: click.Context, cli_log_format: str | None, **conn: Any) -> None:
    """Cadenza: a durable, event-sourced workflow engine.

    Connection options given here apply to every command (as with tctl's global flags); a command's
    own options win. Short forms: `n` for namespace, `wf` for workflow, `tq` for task-queue.
    """
    if cli_log_format is not None:
        from cadenza.ops import logsetup

        logsetup.configure(cli_log_format)
    ctx.obj = root_settings(**conn)


@cli.group()
def dev() -> None:
    """Tools for developing Cadenza itself."""


def _register() -> None:
    # Sub-commands live next to the code they drive; importing them here keeps `cadenza --help` complete.
    from cadenza.ops.commands import admin as admin_commands
    from cadenza.ops.commands import workflow_ops  # noqa: F401  (registers count/reset/reset-batch)
    from cadenza.ops.commands.namespace import namespace
    from cadenza.ops.commands.server import server
    from cadenza.ops.commands.task_queue import task_queue
    from cadenza.ops.commands.workflow import workflow
    from cadenza.ops.devservices.cli import services

    if "services" not in dev.commands:
        dev.add_command(services)
        cli.add_command(server)
        cli.add_command(namespace)
        cli.add_command(workflow)
        cli.add_command(task_queue)
        admin_commands.register(cli)
        root: AliasedGroup = cli  # type: ignore[assignment]
        root.aliases.update(
            {"n": "namespace", "ns": "namespace", "wf": "workflow", "w": "workflow", "tq": "task-queue"}
        )


def main() -> None:
    _register()
    cli()
