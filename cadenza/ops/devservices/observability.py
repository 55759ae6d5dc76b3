"""Jaeger and Prometheus as development servers, built from the Go module proxy (see `gobuild`).

Neither is in the default set: `cadenza dev services up --with jaeger,prometheus` (or naming them)
starts them. Ports on 127.0.0.1, away from the defaults so a real installation can run alongside:

    Jaeger       OTLP gRPC 14317, OTLP HTTP 14318, query API (and UI) 19686, query gRPC 19685
    Prometheus   HTTP API 19090

Prometheus scrapes the targets listed in `<run dir>/targets.json` (file-based discovery, re-read
every second), so a test or a developer can point it at a server started later without a restart:
`set_scrape_targets([...])` or `cadenza dev services up prometheus --scrape HOST:PORT`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cadenza.ops.devservices import gobuild
from cadenza.ops.devservices.resolve import cache_home

JAEGER_TOOL = gobuild.GoTool("jaeger", "github.com/jaegertracing/jaeger/cmd/jaeger", "v1.75.0")
# Prometheus 3.x is published as module versions v0.3xx; the build tag leaves out the cloud service
# discovery plugins (Kubernetes, AWS, Azure, ...), which only static and file targets need not.
PROMETHEUS_TOOL = gobuild.GoTool(
    "prometheus",
    "github.com/prometheus/prometheus/cmd/prometheus",
    "v0.316.0",
    tags=("remove_all_sd",),
)
JAEGER_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: "{host}:{query_port}"
    grpc:
      endpoint: "{host}:{query_grpc_port}"
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{host}:{otlp_grpc_port}"
      http:
        endpoint: "{host}:{otlp_http_port}"

processors:
  batch:
    timeout: 200ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


TARGETS_FILE = "targets.json"
SCRAPE_TARGETS_ENV = "CADENZA_PROMETHEUS_TARGETS"


def write_targets(path: Path, targets: Sequence[str]) -> None:
    """Replace the scrape targets ("host:port", scraped at /metrics) atomically."""
    body = json.dumps([{"targets": [t.strip() for t in targets], "labels": {}}] if targets else [])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(path)


def set_scrape_targets(targets: Sequence[str], home: Path | None = None) -> Path:
    """Point the running dev Prometheus at ``targets``; it picks them up within a second or two."""
    path = (home or cache_home()) / "run" / "prometheus" / TARGETS_FILE
    if not path.parent.is_dir():
        raise RuntimeError(
            f"Prometheus is not running from {path.parent}: `cadenza dev services up prometheus`"
        )
    write_targets(path, targets)
    return path
