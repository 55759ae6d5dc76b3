"""The ``metrics`` block of the server config, as the anchors write it.

Temporal puts it under ``global.metrics``, Cadence under each service (``services.frontend.metrics``);
both are read. Every role runs in one process here, so one endpoint serves them all and the blocks
combine into one: every block that has ``prometheus`` must name the same ``listenAddress`` (two
addresses would each serve every role's series, and a scraper of both would count them twice), and
their ``tags`` are merged, a tag given two different values being an error naming both keys.

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
    """Empty only: every series keeps its tags."""
    prefix: str = ""
    prometheus: _Prometheus | None = None
    statsd: dict[str, Any] | None = None
    """Refused when given: only Prometheus is exported."""

    @field_validator("excludeTags")
    @classmethod
    def _exclude(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            raise ValueError("excluding tags is not supported; leave excludeTags empty")
        return value

    @field_validator("statsd")
    @classmethod
    def _statsd(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            raise ValueError("statsd is not supported; metrics are exported to Prometheus only")
        return value

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
    valid: list[tuple[str, MetricsConfig]] = []
    for where, block in _blocks(doc):
        try:
            valid.append((where, MetricsConfig.model_validate(block)))
        except ValidationError as e:
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"])
                msg = str(err["msg"]).removeprefix("Value error, ")
                problems.append(f"{where}{'.' + loc if loc else ''}: {msg}")
    return problems + _combine(valid)[1]


def _combine(blocks: list[tuple[str, MetricsConfig]]) -> tuple[MetricsSettings | None, list[str]]:
    """The one endpoint the blocks describe, and the conflicts that keep them from being one."""
    problems = []
    address: tuple[str, str] | None = None
    tags: dict[str, tuple[str, str]] = {}
    for where, config in blocks:
        if config.prometheus is not None:
            mine = config.prometheus.listenAddress
            if address is None:
                address = (where, mine)
            elif mine != address[1]:
                problems.append(
                    f"{where}.prometheus.listenAddress: {mine!r} differs from {address[1]!r} "
                    f"({address[0]}.prometheus.listenAddress); every role runs in this process and "
                    "shares one /metrics endpoint"
                )
        for key, value in config.tags.items():
            seen = tags.get(key)
            if seen is not None and seen[1] != value:
                problems.append(
                    f"{where}.tags.{key}: {value!r} conflicts with {seen[1]!r} ({seen[0]}.tags.{key}); "
                    "the roles' series are exported together"
                )
            tags.setdefault(key, (where, value))
    if address is None:
        return None, problems
    return MetricsSettings(address[1], {k: v for k, (_, v) in tags.items()}), problems


def metrics_settings(doc: Mapping[str, Any]) -> MetricsSettings | None:
    """The one endpoint every metrics block describes (None: no block has ``prometheus``)."""
    blocks = [(where, MetricsConfig.model_validate(block)) for where, block in _blocks(doc)]
    return _combine(blocks)[0]
