"""Frontend metrics: ``service_latency`` (its count is ``service_requests``), ``service_errors`` and
``service_errors_<kind>`` per API operation and namespace.

Measured where calls enter the server, inside the per-call wrappers that exist anyway (an extra
coroutine per call was a measurable share of an in-process workflow's cost):

* over gRPC, in ``rpc/server.py``'s method wrapper (``rpc_meter``): operations are the API's
  method names, and requests refused before they reach the frontend (undecodable, or not a valid
  call) count as ``service_errors_invalid_argument``;
* in process, in the SDK's in-process transport (``sdk/_local.py``), which asks the frontend for
  its ``call_observers``; ``FrontendCallMetrics`` is the one the host installs. Operations are the
  frontend's method names in the anchors' spelling (``start_workflow_execution`` ->
  ``StartWorkflowExecution``).

The namespace comes from the request (its ``namespace``, or the task token's namespace id).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from cadenza.metrics.core import Histogram
from cadenza.metrics.persistence import operation_name
from cadenza.metrics.server import UNKNOWN_NAMESPACE, ServerMetrics


def namespace_of_token(token: bytes, metrics: ServerMetrics) -> str:
    """A task token is a JSON list that starts with the namespace id."""
    if token[:2] != b'["':
        return ""
    end = token.find(b'"', 2)
    if end < 0:
        return ""
    return metrics.name_of_id(token[2:end].decode(errors="replace")) or ""


class _Operation:
    """One operation's latency children by the namespace named in the call (known ones only)."""

    __slots__ = ("children", "metrics", "name")

    def __init__(self, metrics: ServerMetrics, name: str) -> None:
        self.metrics = metrics
        self.name = name
        self.children: dict[str, Histogram] = {}

    def child(self, namespace: str) -> Histogram:
        found = self.children.get(namespace)
        if found is None:
            found = self.metrics.service_child(self.name, namespace)
            if self.metrics.namespace_label(namespace) == namespace:
                self.children[namespace] = found
        return found


class RpcMeter:
    """What ``rpc/server.py`` records for one gRPC method."""

    def __init__(self, metrics: ServerMetrics, method: str) -> None:
        self.metrics = metrics
        self.op = _Operation(metrics, method)

    def _namespace(self, record: Any) -> str:
        ns = record.get("namespace")
        if type(ns) is str:
            return ns
        token = record.get("task_token")
        return namespace_of_token(token, self.metrics) if type(token) is bytes else ""

    def done(self, record: Any, started: float) -> None:
        self.op.child(self._namespace(record)).observe(time.perf_counter() - started)

    def failed(self, record: Any, error: BaseException, started: float) -> None:
        namespace = self._namespace(record)
        self.op.child(namespace).observe(time.perf_counter() - started)
        self.metrics.service_error(self.op.name, namespace, error)

    def rejected(self, error: BaseException, started: float) -> None:
        self.op.child(UNKNOWN_NAMESPACE).observe(time.perf_counter() - started)
        self.metrics.service_invalid_argument(self.op.name, error)


def rpc_meter(metrics: Any, method: str) -> RpcMeter | None:
    if metrics is None or not metrics.enabled:
        return None
    return RpcMeter(metrics, method)


CallHook = tuple[Callable[..., None] | None, Callable[..., None]]
"""(before(args, kwargs) or None, after(args, kwargs, elapsed, result, error)) for one method."""

NOT_OPERATIONS = frozenset({"activity_task_token"})


class FrontendCallMetrics:
    """The in-process transport's observer of a metered frontend (see the module's text)."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def hook(self, method: str) -> CallHook | None:
        if method.startswith("_") or method in NOT_OPERATIONS:
            return None
        metrics = self.metrics
        op = _Operation(metrics, operation_name(method))
        children = op.children

        # Runs once per in-process call, so it calls no helpers (they were a measurable share of
        # the metrics' cost): the namespace is found inline and a known one's child is one lookup.
        def after(
            args: tuple[Any, ...], kwargs: dict[str, Any], elapsed: float, result: Any, error: Any
        ) -> None:
            namespace: Any = None
            if args:
                first = args[0]
                if type(first) is str:
                    namespace = first
                elif type(first) is bytes:
                    namespace = namespace_of_token(first, metrics)
                else:
                    namespace = getattr(first, "namespace", None)
            if type(namespace) is not str:
                namespace = kwargs.get("namespace")
                if type(namespace) is not str:
                    namespace = ""
            child = children.get(namespace)
            if child is None:
                child = op.child(namespace)
            child.counts[bisect_left(child.bounds, elapsed)] += 1  # child.observe(elapsed), inline
            child.sum += elapsed
            if error is not None and isinstance(error, Exception):
                metrics.service_error(op.name, namespace, error)

        return None, after


def instrument_frontend(frontend: Any, metrics: ServerMetrics) -> None:
    """Makes in-process calls to ``frontend`` record into ``metrics`` (gRPC calls are recorded by
    the server's method wrapper)."""
    if not metrics.enabled:
        return
    observers = list(getattr(frontend, "call_observers", ()))
    if not any(isinstance(o, FrontendCallMetrics) for o in observers):
        frontend.call_observers = [*observers, FrontendCallMetrics(metrics)]
