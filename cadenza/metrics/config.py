"""The ``metrics`` block of the server config, as the anchors write it.

Temporal puts it under ``global.metrics``, Cadence under each service (``services.frontend.metrics``);
both are read. Every role runs in one process here, so one endpoint serves them all: ``global``
first, else the first service (frontend, history, matching, worker) that has one.

    global:
      metrics:
        tags: {type: frontend}          # added to every series
        prometheus:
          timerType: histogram
          listenAddress: "127.0.0.1:8000"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cadenza.metrics.core import split_address


@dataclass(frozen=True)
class MetricsSettings:
    listen_address: str
    """``host:port`` of the ``/metrics`` endpoint (port 0: any free port)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    timer_type: str = "histogram"
    gauge_interval_s: float = 5.0
    """How often the bus-backed gauges (replication and visibility lag, DLQ sizes) are refreshed."""


class _Prometheus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timerType: Literal["histogram"] = "histogram"
    """Timers are exported as histograms (the anchors also offer summaries; not supported here)."""
    listenAddress: str
    handlerPath: str = "/metrics"

    @field_validator("listenAddress")
    @classmethod
    def _address(cls, value: str) -> str:
        split_address(value)
        return value

    @field_validator("handlerPath")
    @classmethod
    def _path(cls, value: str) -> str:
        if value != "/metrics":
            raise ValueError("only /metrics is served")
        return value


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: dict[str, str] = {}
    excludeTags: dict[str, Any] = {}
    prefix: str = ""
    prometheus: _Prometheus | None = None
    statsd: dict[str, Any] | None = None
    """Accepted as the anchors write it; only Prometheus is exported."""

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value:
            raise ValueError("a metric prefix would break the anchors' dashboards; leave it empty")
        return value


ROLES = ("frontend", "history", "matching", "worker")


def _blocks(doc: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out = []
    g = doc.get("global")
    if isinstance(g, Mapping) and g.get("metrics") is not None:
        out.append(("global.metrics", g["metrics"]))
    services = doc.get("services")
    if isinstance(services, Mapping):
        for role in ROLES:
            s = services.get(role)
            if isinstance(s, Mapping) and s.get("metrics") is not None:
                out.append((f"services.{role}.metrics", s["metrics"]))
    return out


def metrics_problems(doc: Mapping[str, Any]) -> list[str]:
    """Every problem of the metrics blocks of a config document, each as ``<key>: <what>``."""
    problems = []
    for where, block in _blocks(doc):
        try:
            MetricsConfig.model_validate(block)
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(f"{where}{'.' + loc if loc else ''}: {err['msg']}")
    return problems


def metrics_settings(doc: Mapping[str, Any]) -> MetricsSettings | None:
    """What to export, from the first metrics block with a ``prometheus`` section (None: none)."""
    for _, block in _blocks(doc):
        config = MetricsConfig.model_validate(block)
        if config.prometheus is not None:
            return MetricsSettings(
                config.prometheus.listenAddress, dict(config.tags), config.prometheus.timerType
            )
    return None
