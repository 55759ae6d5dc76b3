"""Metrics for the server and the SDK, exported in the Prometheus format (see ``docs/metrics.md``).

``core`` holds the instruments and the exporter; ``server`` the server's families (the anchors'
names); ``frontend``, ``persistence`` and ``gauges`` instrument the server at its boundaries. The
SDK's worker metrics live in ``cadenza.sdk.runtime``.
"""

from cadenza.metrics.core import MetricsRegistry
from cadenza.metrics.server import ServerMetrics

__all__ = ["MetricsRegistry", "ServerMetrics"]
