"""The server's OpenTelemetry traces: a span per RPC, persistence calls as its children.

Off by default. ``configure(TracingSettings(endpoint=...))`` (``cadenza server start-dev
--otlp-endpoint URL``, or ``tracing.otlp.endpoint`` in the server config) installs a tracer that
exports over OTLP/gRPC in batches. A span per call, named ``cadenza.api.v1.WorkflowService/<Method>``,
continues the trace context the client sent in the call's metadata (``traceparent``; the SDK's
``TracingInterceptor`` sends it), so a client's StartWorkflow, the server's handling, the run and its
activities are one trace. Store calls made while handling a call become child spans
(``persistence/<Operation>``); calls made outside any span (the queues' background work) make none.

Off, nothing is wrapped: the RPC handlers and stores are the plain ones, and OpenTelemetry is not
even imported.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("cadenza.tracing")

__all__ = ["TracingSettings", "configure", "enabled", "shutdown", "traced_rpc", "traced_stores"]

RPC_PREFIX = "cadenza.api.v1.WorkflowService/"


@dataclass(frozen=True)
class TracingSettings:
    endpoint: str
    """OTLP/gRPC collector, e.g. ``http://127.0.0.1:4317`` (Jaeger takes OTLP directly)."""
    service_name: str = "cadenza-server"
    sample_ratio: float = 1.0
    """Share of new traces kept; a trace the caller sampled is always continued."""


_state: dict[str, Any] = {"tracer": None, "provider": None, "propagator": None}


def enabled() -> bool:
    return _state["tracer"] is not None


def configure(settings: TracingSettings, *, exporter: Any = None) -> None:
    """Install the process's tracer (one per process; calling again replaces it). ``exporter``
    (a ``SpanExporter``) replaces the OTLP one, each span exported as it ends (for tests)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.propagate import get_global_textmap
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    shutdown()
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if exporter is not None:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        insecure = settings.endpoint.startswith("http://") or "://" not in settings.endpoint
        otlp = OTLPSpanExporter(endpoint=settings.endpoint, insecure=insecure)
        provider.add_span_processor(BatchSpanProcessor(otlp, schedule_delay_millis=500))
    _state["provider"] = provider
    _state["tracer"] = provider.get_tracer("cadenza.server")
    _state["propagator"] = get_global_textmap()
    log.info(
        "tracing to %s as %s (sampling %.2f)", settings.endpoint, settings.service_name, settings.sample_ratio
    )


def shutdown() -> None:
    """Flush and stop the exporter; tracing is off afterwards."""
    provider = _state["provider"]
    _state.update(tracer=None, provider=None, propagator=None)
    if provider is not None:
        provider.shutdown()


Handler = Callable[[bytes, Any], Awaitable[bytes]]


def traced_rpc(method: str, call: Handler) -> Handler:
    """``call`` wrapped in a server span when tracing is on; ``call`` itself when it is off."""
    tracer = _state["tracer"]
    if tracer is None:
        return call
    from opentelemetry.trace import SpanKind

    propagator = _state["propagator"]
    name = RPC_PREFIX + method
    attributes = {"rpc.system": "grpc", "rpc.service": "cadenza.api.v1.WorkflowService", "rpc.method": method}

    async def traced(request: bytes, context: Any) -> bytes:
        carrier = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        parent = propagator.extract(carrier) if carrier else None
        with tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes):
            return await call(request, context)

    return traced


def annotate(fields: dict[str, Any]) -> None:
    """Add ``fields`` to the current span (a no-op outside one, or with tracing off)."""
    if _state["tracer"] is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"cadenza.{k}": str(v) for k, v in fields.items() if v})


def _traced_method(
    fn: Callable[..., Awaitable[Any]], name: str, tracer: Any
) -> Callable[..., Awaitable[Any]]:
    from opentelemetry import trace

    current_span = trace.get_current_span

    async def call(*args: Any, **kwargs: Any) -> Any:
        if not current_span().is_recording():
            return await fn(*args, **kwargs)
        with tracer.start_as_current_span(name):
            return await fn(*args, **kwargs)

    return call


class _TracedStore:
    def __init__(self, inner: Any, tracer: Any) -> None:
        self._inner = inner
        for method in dir(inner):
            if method.startswith("_"):
                continue
            fn = getattr(inner, method, None)
            if callable(fn) and _is_async(fn):
                operation = "".join(part.capitalize() for part in method.split("_"))
                setattr(self, method, _traced_method(fn, f"persistence/{operation}", tracer))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _is_async(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


class TracedStores:
    """A ``Stores`` whose five stores make child spans; ``inner`` is the backend."""

    def __init__(self, inner: Any, tracer: Any) -> None:
        self.inner = inner
        for attr in ("shards", "executions", "history", "task_queues", "namespaces"):
            store = getattr(inner, attr, None)
            if store is not None:
                setattr(self, attr, _TracedStore(store, tracer))

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def traced_stores(stores: Any) -> Any:
    """``stores`` with persistence spans when tracing is on; as they are when it is off."""
    tracer = _state["tracer"]
    if tracer is None or isinstance(stores, TracedStores):
        return stores
    return TracedStores(stores, tracer)


def tracing_settings(doc: dict[str, Any]) -> TracingSettings | None:
    """The ``tracing`` section of a server config, or None when absent (tracing off):

        tracing:
          otlp:
            endpoint: http://127.0.0.1:4317
            serviceName: cadenza-server      # optional
          samplingRatio: 1.0                 # optional

    Raises ``ValueError`` naming the key that is wrong.
    """
    section = doc.get("tracing")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ValueError("tracing: expected a mapping")
    otlp = section.get("otlp") or {}
    if not isinstance(otlp, dict) or not isinstance(otlp.get("endpoint"), str) or not otlp["endpoint"]:
        raise ValueError("tracing.otlp.endpoint: expected the OTLP/gRPC collector's URL")
    ratio = section.get("samplingRatio", 1.0)
    if not isinstance(ratio, int | float) or not 0.0 <= float(ratio) <= 1.0:
        raise ValueError(f"tracing.samplingRatio: expected a number from 0 to 1, got {ratio!r}")
    name = otlp.get("serviceName", "cadenza-server")
    return TracingSettings(otlp["endpoint"], str(name), float(ratio))
