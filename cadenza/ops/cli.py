"""The `cadenza` command line: one click group per area, close to tctl's layout."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cadenza")
def cli() -> None:
    """Cadenza: a durable, event-sourced workflow engine."""


@cli.group()
def dev() -> None:
    """Tools for developing Cadenza itself."""


def _register() -> None:
    # Sub-commands live next to the code they drive; importing them here keeps `cadenza --help` complete.
    from cadenza.ops.devservices.cli import services

    dev.add_command(services)


def main() -> None:
    _register()
    cli()
