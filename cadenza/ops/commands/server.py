"""`cadenza server start-dev` and `cadenza server start --config FILE`.

start-dev runs every role in one process on embedded SQLite (in memory unless ``--db-filename``),
registers the ``default`` namespace and serves gRPC on 127.0.0.1:7233 until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from cadenza.engine.auth.config import AuthorizationSettings
from cadenza.engine.tracing import TracingSettings
from cadenza.metrics.config import MetricsSettings
from cadenza.ops import logsetup
from cadenza.ops.config import ROLES, ConfigError, load_config, settings_from_config
from cadenza.ops.devserver import ServerSettings, serve_forever
from cadenza.replication.cluster import DEV_CLUSTERS, ClusterMetadata

_LOG_FORMAT = click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log line format (stderr)",
)


def _drain_timeout(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from cadenza.ops.config_sections import drain_timeout_s

    if value is None:
        return None
    try:
        return drain_timeout_s(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


_DRAIN_TIMEOUT = click.option(
    "--drain-timeout",
    default=None,
    metavar="DURATION",
    callback=_drain_timeout,
    help="On SIGTERM/SIGINT, how long calls in flight get to finish before the engine stops and "
    "hands its shards over (e.g. 10s, 500ms; at most 1h) [default: 10s, or the config's "
    "global.shutdown.drainTimeout]; a second signal stops at once",
)
_LOG_LEVEL = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
)


@click.group("server")
def server() -> None:
    """Run the Cadenza server."""


def _tls(cert: str | None, key: str | None, client_ca: str | None) -> object:
    from cadenza.engine.rpc import ServerTLS

    if not cert and not key:
        if client_ca:
            raise click.UsageError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if not (cert and key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    return ServerTLS(
        Path(cert).read_bytes(), Path(key).read_bytes(), Path(client_ca).read_bytes() if client_ca else None
    )


def _serve(settings: ServerSettings) -> None:
    from cadenza.engine.auth import KeySourceError
    from cadenza.engine.persistence.errors import PersistenceError

    try:
        asyncio.run(serve_forever(settings))
    except OSError as e:
        click.echo(f"error: cannot start the server on {settings.ip}:{settings.port}: {e}", err=True)
        raise SystemExit(1) from None
    except (PersistenceError, KeySourceError) as e:
        # e.g. Cassandra unreachable, or a keyspace without the schema: the message names the hosts
        # or the command that fixes it; a JWKS that cannot be read names its URI.
        click.echo(f"error: {e}", err=True)
        raise SystemExit(1) from None


@server.command("start-dev")
@click.option("--ip", default="127.0.0.1", show_default=True, help="Address to listen on")
@click.option(
    "--port",
    "-p",
    type=int,
    default=None,
    help="gRPC port (0: any free port) [default: 7233, or the --cluster's]",
)
@click.option("--db-filename", "-f", default=None, help="SQLite file to keep state in [default: in memory]")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Namespace to register (repeatable) [default: default]",
)
@click.option("--num-shards", type=int, default=4, show_default=True, help="History shards")
@click.option(
    "--visibility/--no-visibility",
    default=True,
    show_default=True,
    help="Index workflows for `workflow list` (embedded bus and SQLite visibility store)",
)
@click.option(
    "--cluster",
    type=click.Choice(list(DEV_CLUSTERS)),
    default=None,
    help="Run as this cluster of a three-cluster set on one machine (active 7233, standby 7333, "
    "other 7433), replicating global namespaces through a shared embedded log",
)
@click.option(
    "--replication-log",
    default=None,
    help="The embedded log file the --cluster servers share [default: replication.bus beside "
    "--db-filename, or in the temporary directory]",
)
@click.option(
    "--cluster-address",
    "cluster_addresses",
    multiple=True,
    metavar="NAME=HOST:PORT",
    help="Where another cluster of the --cluster set listens, if not on its usual port (repeatable)",
)
@click.option(
    "--dynamic-config-file",
    default=None,
    help="Dynamic config YAML, re-read when it changes (e.g. frontend.namespaceRPS, "
    "system.enableNamespaceNotActiveAutoForwarding)",
)
@click.option(
    "--cluster-auth-token-file",
    default=None,
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="With --cluster: a file holding the bearer token this server presents to the other "
    "clusters (history fetches that fill replication gaps need system:admin); re-read when it "
    "changes. A forwarded request carries its caller's own token",
)
@click.option(
    "--forwarding/--no-forwarding",
    default=True,
    show_default=True,
    help="With --cluster: send start, signal, cancel, terminate, query, reset and describe of a "
    "namespace that is standby here to its active cluster (else refuse them)",
)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve Prometheus metrics on --ip at this port, path /metrics (0: any free port)",
)
@click.option(
    "--otlp-endpoint",
    default=None,
    metavar="URL",
    help="Send OpenTelemetry traces (a span per call) to this OTLP/gRPC collector, "
    "e.g. http://127.0.0.1:14317 (`cadenza dev services up jaeger`); off by default",
)
@click.option(
    "--trace-sampling",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="With --otlp-endpoint: share of new traces kept (a client's sampled trace is always kept)",
)
@click.option("--tls-cert", default=None, help="PEM server certificate chain (enables TLS)")
@click.option("--tls-key", default=None, help="PEM private key of --tls-cert")
@click.option("--tls-client-ca", default=None, help="PEM CA for client certificates (requires mutual TLS)")
@click.option(
    "--auth-jwks",
    "auth_jwks",
    multiple=True,
    metavar="FILE_OR_URL",
    help="Require a JWT bearer token on every call, verified against this JWKS (a file or an "
    "https URL; repeatable). Make one with `cadenza admin token keygen`. Off by default: the dev "
    "server is open",
)
@click.option(
    "--ui-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve the web UI on --ip at this port (0: no UI) [default: the gRPC port + 1000, so 8233; "
    "any free port when --port is 0]",
)
@click.option("--headless", is_flag=True, help="Run without the web UI (as --ui-port 0)")
@_DRAIN_TIMEOUT
@_LOG_FORMAT
@_LOG_LEVEL
def start_dev(
    ip: str,
    port: int | None,
    db_filename: str | None,
    namespaces: tuple[str, ...],
    num_shards: int,
    visibility: bool,
    cluster: str | None,
    replication_log: str | None,
    cluster_addresses: tuple[str, ...],
    cluster_auth_token_file: str | None,
    dynamic_config_file: str | None,
    forwarding: bool,
    metrics_port: int | None,
    otlp_endpoint: str | None,
    trace_sampling: float,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    auth_jwks: tuple[str, ...],
    ui_port: int | None,
    headless: bool,
    drain_timeout: float | None,
    log_format: str,
    log_level: str,
) -> None:
    """All roles in one process on embedded SQLite, for development, with the web UI."""
    logsetup.configure(log_format, log_level)
    if port is None:
        port = DEV_CLUSTERS[cluster] if cluster else 7233
    if (replication_log or cluster_addresses or cluster_auth_token_file) and not cluster:
        raise click.UsageError(
            "--replication-log, --cluster-address and --cluster-auth-token-file need --cluster"
        )
    addresses: dict[str, str] = {}
    for pair in cluster_addresses:
        name, sep, address = pair.partition("=")
        if not sep or name not in DEV_CLUSTERS or ":" not in address:
            raise click.BadParameter(
                f"expected NAME=HOST:PORT with NAME one of {', '.join(DEV_CLUSTERS)}, got {pair!r}",
                param_hint="--cluster-address",
            )
        addresses[name] = address
    if cluster and port != 0:
        addresses.setdefault(cluster, f"{ip}:{port}")
    settings = ServerSettings(
        ip=ip,
        port=port,
        db_filename=db_filename or ":memory:",
        num_shards=num_shards,
        namespaces=namespaces or ("default",),
        visibility=visibility,
        tls=_tls(tls_cert, tls_key, tls_client_ca),  # type: ignore[arg-type]
        cluster_name=cluster or "active",
        cluster_metadata=(
            ClusterMetadata.dev(cluster, addresses, auth_token_file=cluster_auth_token_file or "")
            if cluster
            else None
        ),
        replication_log=replication_log,
        forwarding=forwarding,
        dynamic_config_file=dynamic_config_file,
        metrics=MetricsSettings(f"{ip}:{metrics_port}") if metrics_port is not None else None,
        tracing=TracingSettings(otlp_endpoint, sample_ratio=trace_sampling) if otlp_endpoint else None,
        authorization=_authorization(auth_jwks),
        ui=_ui(ip, port, ui_port, headless),
    )
    if drain_timeout is not None:
        settings.drain_timeout_s = drain_timeout
    _serve(settings)


def _ui(ip: str, grpc_port: int, ui_port: int | None, headless: bool) -> object:
    from cadenza.ui.server import UISettings

    if headless or ui_port == 0:
        return None
    if ui_port is not None:
        return UISettings(ip, ui_port, required=True)
    # Not asked for: Temporal's rule (the gRPC port + 1000). A port taken by another server is
    # logged and the server runs without its UI rather than not at all.
    default = grpc_port + 1000 if grpc_port and grpc_port + 1000 <= 65535 else 0
    return UISettings(ip, default, required=False)


def _authorization(jwks: tuple[str, ...]) -> AuthorizationSettings | None:
    if not jwks:
        return None
    for source in jwks:
        if "://" not in source and not Path(source).expanduser().is_file():
            raise click.BadParameter(f"{source}: no such file", param_hint="--auth-jwks")
    return AuthorizationSettings(key_source_uris=jwks)


@server.command("start")
@click.option("--config", "-c", "config_path", required=True, help="YAML config file (see docs)")
@click.option(
    "--services",
    "-s",
    default=",".join(ROLES),
    show_default=True,
    help="Roles to run in this process (comma-separated)",
)
@_DRAIN_TIMEOUT
@_LOG_FORMAT
@_LOG_LEVEL
def start(
    config_path: str, services: str, drain_timeout: float | None, log_format: str, log_level: str
) -> None:
    """Start a server from a config file (SQLite or Cassandra; visibility on SQLite or Elasticsearch,
    through the embedded log or Kafka)."""
    roles = [r.strip() for r in services.split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise click.BadParameter(
            f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}", param_hint="--services"
        )
    if set(roles) != set(ROLES):
        raise click.BadParameter(
            "this build runs every role in one process; running a subset of roles "
            "(separate frontend, history, matching processes) is not supported yet",
            param_hint="--services",
        )
    try:
        settings = settings_from_config(load_config(config_path), config_path)
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(1) from None
    if drain_timeout is not None:  # the flag wins over the config file
        settings.drain_timeout_s = drain_timeout
    logsetup.configure(log_format, log_level)
    _serve(settings)
