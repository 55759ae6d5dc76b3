"""The SDK runtime: where clients and workers send their telemetry, spelled as temporalio spells it.

    from cadenza.runtime import PrometheusConfig, Runtime, TelemetryConfig

    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address="0.0.0.0:9464")))
    client = await Client.connect("127.0.0.1:7233", runtime=runtime)

Every client (and the workers that use it) records into its runtime's metrics; the default runtime
(``Runtime.default()``) has none and costs nothing. Metric names are temporalio's with the
``cadenza_`` prefix (``TelemetryConfig.metric_prefix``): ``cadenza_request``,
``cadenza_workflow_task_execution_latency``, ``cadenza_sticky_cache_hit``, ... (``docs/metrics.md``).
As temporalio's defaults, counters carry no ``_total`` suffix and durations are milliseconds
(``durations_as_seconds=True`` for seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_default_runtime: Runtime | None = None


@dataclass(frozen=True)
class PrometheusConfig:
    """Serve metrics for Prometheus to scrape at ``bind_address`` (``host:port``, path ``/metrics``)."""

    bind_address: str
    counters_total_suffix: bool = False
    """Accepted for temporalio's code; counters are exported without ``_total`` either way."""
    unit_suffix: bool = False
    """Accepted for temporalio's code; names carry no unit suffix."""
    durations_as_seconds: bool = False
    histogram_bucket_overrides: Mapping[str, Sequence[float]] | None = None
    """Bucket bounds by metric name (with its prefix), in the unit the durations are in."""


@dataclass(frozen=True)
class TelemetryConfig:
    metrics: PrometheusConfig | None = None
    global_tags: Mapping[str, str] = field(default_factory=dict)
    """Tags added to every series."""
    attach_service_name: bool = True
    """Adds ``service_name="cadenza-sdk"`` to every series (temporalio's ``service_name`` tag)."""
    metric_prefix: str | None = None
    """Prefix of every metric name (default ``cadenza_``)."""
    logging: Any = None
    """Accepted for temporalio's code; the SDK logs through Python's ``logging``."""


class Runtime:
    """Telemetry for the clients and workers that use it (``Client.connect(..., runtime=...)``)."""

    @staticmethod
    def default() -> Runtime:
        global _default_runtime
        if _default_runtime is None:
            _default_runtime = Runtime(telemetry=TelemetryConfig())
        return _default_runtime

    @staticmethod
    def set_default(runtime: Runtime, *, error_if_already_set: bool = True) -> None:
        global _default_runtime
        if _default_runtime is not None and error_if_already_set:
            raise RuntimeError("Runtime default already set")
        _default_runtime = runtime

    def __init__(self, *, telemetry: TelemetryConfig) -> None:
        self.telemetry = telemetry
        self.metrics: Any = None
        """``cadenza.sdk._metrics.SdkMetrics`` when ``telemetry.metrics`` is set."""
        config = telemetry.metrics
        if config is not None:
            from cadenza.sdk._metrics import SdkMetrics

            tags = dict(telemetry.global_tags)
            if telemetry.attach_service_name:
                tags.setdefault("service_name", "cadenza-sdk")
            self.metrics = SdkMetrics(
                prefix="cadenza_" if telemetry.metric_prefix is None else telemetry.metric_prefix,
                tags=tags,
                seconds=config.durations_as_seconds,
                bucket_overrides=config.histogram_bucket_overrides or {},
            )
            self.metrics.registry.serve(config.bind_address)

    @property
    def metrics_port(self) -> int | None:
        """The port the Prometheus endpoint listens on (useful with port 0)."""
        return None if self.metrics is None else self.metrics.registry.port

    def close(self) -> None:
        """Stops serving metrics."""
        if self.metrics is not None:
            self.metrics.registry.stop_serving()


def metered(service: Any, runtime: Runtime, namespace: str = "") -> Any:
    """``service`` recording into ``runtime``'s metrics (as it is when the runtime has none): the
    in-process transport takes an observer (no wrapper per call), any other service a proxy."""
    if runtime.metrics is None:
        return service
    from cadenza.sdk._local import LocalService
    from cadenza.sdk._metrics import MeteredService, SdkCallMetrics

    if isinstance(service, MeteredService):
        return service
    if isinstance(service, LocalService):
        if any(isinstance(o, SdkCallMetrics) and o.metrics is runtime.metrics for o in service.observers):
            return service
        return service.observed_by(SdkCallMetrics(runtime.metrics, namespace))
    return MeteredService(service, runtime.metrics, namespace)
