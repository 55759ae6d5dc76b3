"""The SDK runtime and its telemetry options (see ``cadenza.sdk.runtime``), where temporalio users
look for them: ``from cadenza.runtime import PrometheusConfig, Runtime, TelemetryConfig``."""

from cadenza.sdk.runtime import PrometheusConfig, Runtime, TelemetryConfig

__all__ = ["PrometheusConfig", "Runtime", "TelemetryConfig"]
