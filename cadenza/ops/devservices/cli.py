"""`cadenza dev services`: real Kafka, Cassandra and Elasticsearch (and, when asked, Jaeger and
Prometheus) on this machine for tests."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

import click

from cadenza.ops.devservices.manager import (
    DEFAULT_GRACE,
    DEFAULT_TIMEOUT,
    ServiceError,
    ServiceManager,
    ServiceStatus,
)
from cadenza.ops.devservices.observability import SCRAPE_TARGETS_ENV
from cadenza.ops.devservices.services import DEFAULT_SERVICES, SERVICES

_SERVICE = click.Choice(sorted(SERVICES))
_OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)


def _table(rows: list[ServiceStatus]) -> str:
    header = ("SERVICE", "PID", "ALIVE", "READY", "ADDRESS")
    cells = [header] + [
        (r.service, str(r.pid or "-"), "yes" if r.alive else "no", "yes" if r.ready else "no", r.address)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _fail(exc: ServiceError) -> None:
    for name, why in exc.failures.items():
        click.echo(f"error: {name}: {why}", err=True)
        log = exc.logs.get(name)
        if log:
            click.echo(f"----- last lines of the {name} log -----", err=True)
            click.echo(log, err=True)
            click.echo(f"----- end of the {name} log -----", err=True)
    sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def services() -> None:
    """Run real Kafka 4, Cassandra 5 and Elasticsearch 8 locally (jars from Maven Central, needs Java 17),
    and on request Jaeger and Prometheus (built from the Go module proxy with the machine's Go).

    Ports on 127.0.0.1: Kafka 19092, Cassandra 19042, Elasticsearch 19200; Jaeger query 19686 and
    OTLP 14317 (gRPC) / 14318 (HTTP); Prometheus 19090. Jars, binaries, data and logs live under
    ~/.cache/cadenza/devservices (or $CADENZA_DEVSERVICES_HOME).
    """


@services.command()
@click.argument("names", nargs=-1, type=_SERVICE)
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for every service to answer.",
)
@click.option(
    "--with",
    "extra",
    default="",
    metavar="NAMES",
    help="Comma-separated services to start besides the default set, e.g. jaeger,prometheus.",
)
@click.option(
    "--scrape",
    multiple=True,
    metavar="HOST:PORT",
    help="A /metrics endpoint for the dev Prometheus to scrape (repeatable).",
)
@_OUTPUT
def up(names: tuple[str, ...], timeout: float, extra: str, scrape: tuple[str, ...], output: str) -> None:
    """Start the services (kafka, cassandra and elasticsearch when none named) in parallel and wait
    until they answer."""
    chosen = list(names) or list(DEFAULT_SERVICES)
    for name in (n.strip() for n in extra.split(",")):
        if name and name not in SERVICES:
            raise click.BadParameter(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
        if name and name not in chosen:
            chosen.append(name)
    if scrape:
        os.environ[SCRAPE_TARGETS_ENV] = ",".join(scrape)
    try:
        rows = ServiceManager().up(chosen, timeout=timeout)
    except ServiceError as exc:
        _fail(exc)
        return
    if output == "json":
        click.echo(json.dumps({r.service: r.address for r in rows}, indent=2))
    else:
        for r in rows:
            where = SERVICES[r.service].describe().removeprefix(r.service).strip()
            click.echo(f"{r.service:<14} {where}")


@services.command()
@click.argument("names", nargs=-1, type=_SERVICE)
@click.option(
    "--grace",
    type=float,
    default=DEFAULT_GRACE,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL.",
)
def down(names: tuple[str, ...], grace: float) -> None:
    """Stop the services this tool started (all when none named)."""
    stopped = ServiceManager().down(names, grace=grace)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@services.command()
@click.argument("names", nargs=-1, type=_SERVICE)
@_OUTPUT
def status(names: tuple[str, ...], output: str) -> None:
    """Show PID, liveness, readiness and address of each service."""
    rows = ServiceManager().status(names)
    if output == "json":
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        click.echo(_table(rows))


@services.command()
@click.argument("name", type=_SERVICE)
@click.option("-n", "--lines", type=int, default=50, show_default=True)
def logs(name: str, lines: int) -> None:
    """Print the last lines of a service's log."""
    manager = ServiceManager()
    text = manager.logs(name, lines)
    if not text:
        click.echo(f"no log yet at {manager.log_file(name)}", err=True)
        sys.exit(1)
    click.echo(text)
