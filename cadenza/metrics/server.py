"""The server's metrics, named as the anchors name them so their dashboards and alerts carry over.

``ServerMetrics`` is created by whoever starts the server and injected into the host (never a
global): the frontend, the persistence stores, the shard queues, matching and the history engine
each record through it. ``ServerMetrics.disabled()`` (the default) records nothing, and the
instrumented paths check ``enabled`` once when they are built, so a server without metrics pays
nothing for them.

Latencies are in seconds (``timerType: histogram``). Label sets are bounded: ``operation`` is an
API or store method, ``namespace`` a registered namespace (anything else is ``_unknown_``),
``task_queue`` a queue workers poll (a worker's sticky queue is reported under its normal queue).
``docs/metrics.md`` lists every series.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cadenza.metrics.core import MAX_CHILDREN, Counter, Histogram, MetricsRegistry

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
ATTEMPT_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 1000)
HISTORY_COUNT_BUCKETS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 51_200)
HISTORY_SIZE_BUCKETS = tuple(1024 * 4**i for i in range(10))  # 1 KiB .. 256 MiB

UNKNOWN_NAMESPACE = "_unknown_"

SERVICE_ERROR_KINDS = {
    "InvalidArgumentError": "invalid_argument",
    "NotFoundError": "entity_not_found",
    "WorkflowAlreadyStartedError": "execution_already_started",
    "AlreadyExistsError": "already_exists",
    "WorkflowCompletedError": "execution_already_completed",
    "QueryRejectedError": "query_failed",
    "QueryFailedError": "query_failed",
    "NamespaceNotActiveError": "namespace_not_active",
    "FailedPreconditionError": "failed_precondition",
    "ResourceExhaustedError": "resource_exhausted",
    "DeadlineExceededError": "context_timeout",
    "UnavailableError": "unavailable",
    "ServiceError": "internal",
}
"""``service_errors_<kind>`` by the engine's error class (the nearest base class that is listed)."""

PERSISTENCE_ERROR_KINDS = {
    "CurrentWorkflowConditionFailedError": "current_workflow_condition_failed",
    "ConditionFailedError": "condition_failed",
    "ShardOwnershipLostError": "shard_ownership_lost",
    "EntityNotFoundError": "entity_not_found",
    "AlreadyExistsError": "already_exists",
    "TaskQueueLeaseLostError": "task_queue_lease_lost",
    "StoreUnavailableError": "unavailable",
}
"""``persistence_errors_<kind>`` by the store's error class; anything else counts only in
``persistence_errors``."""

WORKFLOW_CLOSE_COUNTERS = {
    2: "workflow_success",
    3: "workflow_failed",
    4: "workflow_cancel",
    5: "workflow_terminate",
    6: "workflow_continued_as_new",
    7: "workflow_timeout",
}
"""By ``ExecutionStatus`` value."""

TASK_CATEGORIES = ("transfer", "timer", "visibility", "replication")


def _kind_of(cls: type, table: Mapping[str, str], cache: dict[type, str | None]) -> str | None:
    if cls in cache:
        return cache[cls]
    kind = next((table[c.__name__] for c in cls.__mro__ if c.__name__ in table), None)
    cache[cls] = kind
    return kind


class ServerMetrics:
    """Every family of the server, with helpers that bind children once."""

    def __init__(self, registry: MetricsRegistry | None = None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        r = self.registry = registry or MetricsRegistry()
        self.namespace_name: Callable[[str], str | None] = lambda _id: None
        """Namespace id -> name (set by the host from its namespace registry)."""
        self.known_namespace: Callable[[str], bool] = lambda _name: True
        """Whether a namespace name is registered (unknown ones are labelled ``_unknown_``)."""
        op_ns = ("operation", "namespace")
        self.service_latency = r.histogram(
            "service_latency", "Frontend request latency (seconds)", op_ns, LATENCY_BUCKETS
        )
        r.derived_counter("service_requests", "Frontend requests", self.service_latency)
        self.service_errors = r.counter("service_errors", "Frontend requests that failed", op_ns)
        self.service_error_with_type = r.counter(
            "service_error_with_type", "Frontend failures by error class", (*op_ns, "error_type")
        )
        self._service_error_kinds = {
            kind: r.counter(f"service_errors_{kind}", f"Frontend requests refused: {kind}", op_ns)
            for kind in dict.fromkeys(SERVICE_ERROR_KINDS.values())
        }
        self._service_kind_cache: dict[type, str | None] = {}

        self.persistence_latency = r.histogram(
            "persistence_latency", "Store call latency (seconds)", ("operation",), LATENCY_BUCKETS
        )
        r.derived_counter("persistence_requests", "Store calls", self.persistence_latency)
        self.persistence_errors = r.counter("persistence_errors", "Store calls that failed", ("operation",))
        self._persistence_error_kinds = {
            kind: r.counter(f"persistence_errors_{kind}", f"Store calls failed: {kind}", ("operation",))
            for kind in dict.fromkeys(PERSISTENCE_ERROR_KINDS.values())
        }
        self._persistence_kind_cache: dict[type, str | None] = {}

        task = ("task_category", "task_type", "namespace")
        self.task_requests = r.counter("task_requests", "Shard queue tasks processed", task)
        self.task_errors = r.counter("task_errors", "Shard queue task attempts that failed", task)
        self.task_latency = r.histogram(
            "task_latency",
            "Time to process a task (seconds; a visibility or replication batch: the whole batch)",
            task,
            LATENCY_BUCKETS,
        )
        self.task_latency_queue = r.histogram(
            "task_latency_queue",
            "From a task's arrival (a timer: its due time) to its acknowledgement (seconds)",
            task,
            LATENCY_BUCKETS,
        )
        self.task_attempt = r.histogram("task_attempt", "Attempts a task took", task, ATTEMPT_BUCKETS)

        ns_tq = ("namespace", "task_queue")
        self._close_counters = {
            status: r.counter(name, f"Workflow runs closed: {name.removeprefix('workflow_')}", ns_tq)
            for status, name in WORKFLOW_CLOSE_COUNTERS.items()
        }
        self.history_count = r.histogram(
            "history_count", "Events in a run's history when it closes", ("namespace",), HISTORY_COUNT_BUCKETS
        )
        self.history_size = r.histogram(
            "history_size", "Bytes of a run's history when it closes", ("namespace",), HISTORY_SIZE_BUCKETS
        )
        self.schedule_to_start_latency = r.histogram(
            "schedule_to_start_latency",
            "From a task reaching matching to a worker's poll taking it (seconds)",
            (*ns_tq, "task_type"),
            LATENCY_BUCKETS,
        )
        self._service_children: dict[tuple[str, str], Histogram] = {}
        self._task_children: dict[tuple[int, int, str], tuple[Counter, Histogram, Histogram, Histogram]] = {}
        self._schedule_children: dict[tuple[str, str, str], Histogram] = {}
        self._names: dict[str, str] = {}
        """Namespace id -> name, of the namespaces found so far. A namespace keeps its name (updates
        go by name and keep the id), so a found name stays right; ids not found are asked again."""

    @classmethod
    def disabled(cls) -> ServerMetrics:
        return cls(enabled=False)

    # -- names -------------------------------------------------------------------------------------

    def namespace_label(self, name: str) -> str:
        return name if name and self.known_namespace(name) else UNKNOWN_NAMESPACE

    def name_of_id(self, namespace_id: str) -> str | None:
        """The namespace's name, or None if it is not registered (``namespace_name``, cached)."""
        name = self._names.get(namespace_id)
        if name is None:
            name = self.namespace_name(namespace_id)
            if name and len(self._names) < MAX_CHILDREN:
                self._names[namespace_id] = name
        return name

    def namespace_label_of_id(self, namespace_id: str) -> str:
        # A cached name without a call to ``name_of_id``.
        return self._names.get(namespace_id) or self.name_of_id(namespace_id) or UNKNOWN_NAMESPACE

    # -- frontend ----------------------------------------------------------------------------------

    def service_child(self, operation: str, namespace: str) -> Histogram:
        """The latency child of ``operation`` in ``namespace`` (the raw name from the request)."""
        key = (operation, namespace)
        child = self._service_children.get(key)
        if child is None:
            label = self.namespace_label(namespace)
            child = self.service_latency.labels(operation, label)
            if label != UNKNOWN_NAMESPACE:
                self._service_children[key] = child
        return child

    def service_error(self, operation: str, namespace: str, error: BaseException) -> None:
        ns = self.namespace_label(namespace)
        self.service_errors.labels(operation, ns).inc()
        self.service_error_with_type.labels(operation, ns, type(error).__name__).inc()
        kind = _kind_of(type(error), SERVICE_ERROR_KINDS, self._service_kind_cache)
        if kind is not None:
            self._service_error_kinds[kind].labels(operation, ns).inc()

    def service_invalid_argument(self, operation: str, error: BaseException) -> None:
        """A request refused before it reached the frontend (undecodable, or not a valid call)."""
        ns = UNKNOWN_NAMESPACE
        self.service_errors.labels(operation, ns).inc()
        self.service_error_with_type.labels(operation, ns, type(error).__name__).inc()
        self._service_error_kinds["invalid_argument"].labels(operation, ns).inc()

    # -- persistence -------------------------------------------------------------------------------

    def persistence_error(self, operation: str, error: BaseException) -> None:
        self.persistence_errors.labels(operation).inc()
        kind = _kind_of(type(error), PERSISTENCE_ERROR_KINDS, self._persistence_kind_cache)
        if kind is not None:
            self._persistence_error_kinds[kind].labels(operation).inc()

    # -- shard queues ------------------------------------------------------------------------------

    def task_children(
        self, category: int, kind: int, namespace_id: str, category_name: str, type_name: str
    ) -> tuple[Counter, Histogram, Histogram, Histogram]:
        """(requests, latency, queue latency, attempts) of one task category, kind and namespace."""
        key = (category, kind, namespace_id)
        children = self._task_children.get(key)
        if children is None:
            labels = (category_name, type_name, self.namespace_label_of_id(namespace_id))
            children = (
                self.task_requests.labels(*labels),
                self.task_latency.labels(*labels),
                self.task_latency_queue.labels(*labels),
                self.task_attempt.labels(*labels),
            )
            self._task_children[key] = children
        return children

    # -- workflows ---------------------------------------------------------------------------------

    def workflow_closed(self, info: Any, history_count: int) -> None:
        """A run closed (``info``: its ``ExecutionInfo``)."""
        counter = self._close_counters.get(int(info.status))
        ns = self.namespace_label_of_id(info.namespace_id)
        if counter is not None:
            counter.children[(ns, info.task_queue)].inc()
        key = (ns,)
        self.history_count.children[key].observe(history_count)
        self.history_size.children[key].observe(info.history_size_bytes)

    def schedule_to_start(self, namespace_id: str, task_queue: str, task_type: str, seconds: float) -> None:
        key = (namespace_id, task_queue, task_type)
        child = self._schedule_children.get(key)
        if child is None:
            label = self.namespace_label_of_id(namespace_id)
            child = self.schedule_to_start_latency.children[(label, task_queue, task_type)]
            # Kept by namespace id when the id is known (its label then never changes), and
            # bounded like the family itself.
            if label != UNKNOWN_NAMESPACE and len(self._schedule_children) < MAX_CHILDREN:
                self._schedule_children[key] = child
        child.observe(seconds)
