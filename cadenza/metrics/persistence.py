"""``metered_stores``: the Store protocols with every call timed (``persistence_latency``, whose count
is ``persistence_requests``) and every failure counted (``persistence_errors`` and
``persistence_errors_<kind>``), as the anchors' persistence metric clients do.

Each protocol method becomes an attribute of the proxy bound to its own latency child, so a call
costs one coroutine, two clock reads and one histogram update; everything else (``close``, a
backend's own attributes) reaches the backend unchanged.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import Any

from cadenza.engine.persistence.protocols import (
    ExecutionStore,
    HistoryStore,
    MembershipStore,
    NamespaceStore,
    ShardStore,
    TaskQueueStore,
)
from cadenza.metrics.core import Histogram
from cadenza.metrics.server import ServerMetrics

_STORES: dict[str, tuple[type, dict[str, str]]] = {
    "shards": (ShardStore, {}),
    "executions": (
        ExecutionStore,
        {"get_tasks": "GetHistoryTasks", "complete_tasks": "RangeCompleteHistoryTasks"},
    ),
    "history": (HistoryStore, {}),
    "task_queues": (
        TaskQueueStore,
        {"get_tasks": "GetTasks", "complete_tasks_less_than": "CompleteTasksLessThan"},
    ),
    "namespaces": (NamespaceStore, {}),
    "membership": (MembershipStore, {}),
}


def operation_name(method: str) -> str:
    """``create_workflow_execution`` -> ``CreateWorkflowExecution`` (the anchors' spelling)."""
    return "".join(part.capitalize() for part in method.split("_"))


def _protocol_methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if not n.startswith("_") and callable(v)]


def _timed(
    fn: Callable[..., Awaitable[Any]], child: Histogram, operation: str, metrics: ServerMetrics
) -> Callable[..., Awaitable[Any]]:
    clock = time.perf_counter
    counts, bounds = child.counts, child.bounds

    # A coroutine around the store's own (timing an awaited call needs one); the histogram update
    # is ``child.observe`` inline, to keep this per-store-call layer as thin as it can be.
    async def call(*args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        try:
            return await fn(*args, **kwargs)
        except Exception as e:
            metrics.persistence_error(operation, e)
            raise
        finally:
            took = clock() - t0
            counts[bisect_left(bounds, took)] += 1
            child.sum += took

    return call


class _MeteredStore:
    def __init__(self, inner: Any, protocol: type, names: dict[str, str], metrics: ServerMetrics) -> None:
        self._inner = inner
        for method in _protocol_methods(protocol):
            fn = getattr(inner, method, None)
            if fn is None:
                continue
            op = names.get(method) or operation_name(method)
            setattr(self, method, _timed(fn, metrics.persistence_latency.labels(op), op, metrics))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class MeteredStores:
    """A ``Stores`` whose stores are metered; ``inner`` is the backend."""

    def __init__(self, inner: Any, metrics: ServerMetrics) -> None:
        self.inner = inner
        for attr, (protocol, names) in _STORES.items():
            setattr(self, attr, _MeteredStore(getattr(inner, attr), protocol, names, metrics))

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def metered_stores(stores: Any, metrics: ServerMetrics) -> Any:
    """``stores`` metered, or as they are when ``metrics`` is disabled or they are metered already."""
    if not metrics.enabled or isinstance(stores, MeteredStores):
        return stores
    return MeteredStores(stores, metrics)
