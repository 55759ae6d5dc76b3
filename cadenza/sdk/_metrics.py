"""SDK metrics: what a client and its workers record when their runtime exports metrics.

Names follow temporalio's (``temporal_*``) with the runtime's prefix (``cadenza_`` by default):

* every call to the server: ``request`` / ``request_latency`` / ``request_failure``, and for long
  polls ``long_request`` / ``long_request_latency`` / ``long_request_failure`` (``operation``);
* polls: ``workflow_task_queue_poll_succeed`` / ``_empty`` (``poller_type``: ``workflow_task`` or
  ``sticky_workflow_task``), ``activity_poll_no_task``, ``num_pollers``,
  ``worker_task_slots_available``;
* workflow tasks: ``workflow_task_execution_latency`` (from the poll's answer to the worker's
  reply), ``workflow_task_replay_latency`` (a task that had to replay history first),
  ``workflow_task_schedule_to_start_latency``, ``workflow_task_execution_failed``, and the runs a
  worker closes: ``workflow_completed``, ``workflow_failed``, ``workflow_canceled``,
  ``workflow_continue_as_new``;
* activities: ``activity_execution_latency`` (from the poll's answer to the reply),
  ``activity_schedule_to_start_latency``, ``activity_execution_failed``,
  ``activity_execution_cancelled``;
* the workflow cache: ``sticky_cache_hit``, ``sticky_cache_miss``, ``sticky_cache_size``.

All of it is recorded by ``MeteredService`` (a proxy in front of the client's service, so the
worker's code is untouched) and by the worker's cache counters, read at scrape time.
"""

from __future__ import annotations

import asyncio
import functools
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cadenza.metrics.core import Histogram, MetricsRegistry
from cadenza.schemas.events import CommandType, EventType
from cadenza.schemas.service import WorkflowService

MS_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000)
TOKENS_KEPT = 50_000
"""Tasks polled and not answered yet that are remembered (a worker that dies leaves some)."""

_CLOSE_COMMANDS = {
    CommandType.COMPLETE_WORKFLOW_EXECUTION: "completed",
    CommandType.FAIL_WORKFLOW_EXECUTION: "failed",
    CommandType.CANCEL_WORKFLOW_EXECUTION: "canceled",
    CommandType.CONTINUE_AS_NEW_WORKFLOW_EXECUTION: "continue_as_new",
}


def _operation(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def _normal_queue(queue: str) -> tuple[str, str]:
    """(the task queue, the poller type) of a polled queue (a sticky queue reports its normal one)."""
    normal, sticky, _ = queue.partition(":sticky:")
    return normal, "sticky_workflow_task" if sticky else "workflow_task"


class SdkMetrics:
    def __init__(
        self,
        *,
        prefix: str = "cadenza_",
        tags: Mapping[str, str] | None = None,
        seconds: bool = False,
        bucket_overrides: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        r = self.registry = MetricsRegistry(prefix=prefix, tags=tags)
        self.scale = 1.0 if seconds else 1000.0
        """Seconds -> the exported duration unit."""
        overrides = dict(bucket_overrides or {})
        default = tuple(b / 1000 for b in MS_BUCKETS) if seconds else MS_BUCKETS

        def latency(name: str, doc: str, labels: Sequence[str]) -> Any:
            unit = "seconds" if seconds else "milliseconds"
            return r.histogram(name, f"{doc} ({unit})", labels, overrides.get(prefix + name, default))

        op = ("operation", "namespace")
        self.request_latency = latency("request_latency", "Client request latency", op)
        r.derived_counter("request", "Client requests", self.request_latency)
        self.request_failure = r.counter(
            "request_failure", "Client requests that failed", (*op, "status_code")
        )
        self.long_request_latency = latency("long_request_latency", "Long-poll request latency", op)
        r.derived_counter("long_request", "Long-poll requests", self.long_request_latency)
        self.long_request_failure = r.counter(
            "long_request_failure", "Long-poll requests that failed", (*op, "status_code")
        )
        tq = ("namespace", "task_queue")
        poll = (*tq, "poller_type")
        self.poll_succeed = r.counter(
            "workflow_task_queue_poll_succeed", "Workflow task polls with a task", poll
        )
        self.poll_empty = r.counter(
            "workflow_task_queue_poll_empty", "Workflow task polls that timed out", poll
        )
        self.activity_poll_no_task = r.counter("activity_poll_no_task", "Activity polls that timed out", tq)
        wf = (*tq, "workflow_type")
        self.wft_execution = latency("workflow_task_execution_latency", "Workflow task execution", wf)
        self.wft_replay = latency("workflow_task_replay_latency", "Replaying history in a workflow task", wf)
        self.wft_schedule_to_start = latency(
            "workflow_task_schedule_to_start_latency", "Workflow task schedule to start", tq
        )
        self.wft_failed = r.counter(
            "workflow_task_execution_failed", "Workflow tasks that failed", (*wf, "failure_reason")
        )
        self.workflow_closed = {
            outcome: r.counter(f"workflow_{outcome}", f"Workflow runs a worker closed: {outcome}", wf)
            for outcome in _CLOSE_COMMANDS.values()
        }
        act = (*tq, "activity_type")
        self.activity_execution = latency("activity_execution_latency", "Activity execution", act)
        self.activity_schedule_to_start = latency(
            "activity_schedule_to_start_latency", "Activity schedule to start", act
        )
        self.activity_failed = r.counter("activity_execution_failed", "Activity attempts that failed", act)
        self.activity_cancelled = r.counter(
            "activity_execution_cancelled", "Activity attempts that were cancelled", act
        )
        self._workers: set[Any] = set()
        self._retired: dict[str, dict[tuple[str, ...], float]] = {"hits": {}, "misses": {}}
        """Cache counts of workers that shut down, so the counters never go back."""
        r.callback_counter("sticky_cache_hit", "Workflow tasks that found their run cached", tq, self._hits)
        r.callback_counter(
            "sticky_cache_miss", "Workflow tasks that had to replay a run not cached", tq, self._misses
        )
        r.gauge("sticky_cache_size", "Runs in the workflow cache", tq, self._cache_sizes)
        r.gauge("num_pollers", "Pollers of a worker", poll, self._pollers)
        r.gauge(
            "worker_task_slots_available",
            "Free task slots of a worker",
            (*tq, "worker_type"),
            self._slots,
        )
        self._tokens: dict[bytes, tuple[float, Histogram, Any]] = {}

    # -- workers ---------------------------------------------------------------------------------

    def add_worker(self, worker: Any) -> None:
        self._workers.add(worker)

    def remove_worker(self, worker: Any) -> None:
        """The worker shut down: its gauges go, its counts stay in the counters."""
        if worker in self._workers:
            self._workers.discard(worker)
            key = self._key(worker)
            for name, value in (("hits", worker._cache.hits), ("misses", worker._cache.misses)):
                retired = self._retired[name]
                retired[key] = retired.get(key, 0) + value

    def _sum(self, each: Callable[[Any], Mapping[tuple[str, ...], float]]) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for w in list(self._workers):
            for key, value in each(w).items():
                out[key] = out.get(key, 0) + value
        return out

    @staticmethod
    def _key(w: Any) -> tuple[str, str]:
        return (w.client.namespace, w.task_queue)

    def _counts(self, name: str) -> dict[tuple[str, ...], float]:
        out = self._sum(lambda w: {self._key(w): getattr(w._cache, name)})
        for key, value in self._retired[name].items():
            out[key] = out.get(key, 0) + value
        return out

    def _hits(self) -> dict[tuple[str, ...], float]:
        return self._counts("hits")

    def _misses(self) -> dict[tuple[str, ...], float]:
        return self._counts("misses")

    def _cache_sizes(self) -> dict[tuple[str, ...], float]:
        return self._sum(lambda w: {self._key(w): len(w._cache)})

    def _pollers(self) -> dict[tuple[str, ...], float]:
        def each(w: Any) -> dict[tuple[str, ...], float]:
            ns, tq = self._key(w)
            sticky = max(1, w._workflow_pollers // 2) if w._cache.queue and w._workflow_pollers else 0
            return {
                (ns, tq, "workflow_task"): w._workflow_pollers,
                (ns, tq, "sticky_workflow_task"): sticky,
                (ns, tq, "activity_task"): w._activity_pollers,
            }

        return self._sum(each)

    def _slots(self) -> dict[tuple[str, ...], float]:
        def each(w: Any) -> dict[tuple[str, ...], float]:
            ns, tq = self._key(w)
            out: dict[tuple[str, ...], float] = {}
            if w._workflow_pollers:
                out[(ns, tq, "WorkflowWorker")] = w._workflow_task_slots._value
            if w._activity_pollers:
                out[(ns, tq, "ActivityWorker")] = w._activity_slots._value
            return out

        return self._sum(each)

    def workflow_task_activated(self, task: Any, events: Sequence[Any], seconds: float) -> None:
        """A worker ran a workflow task's events; those of a run it did not have were a replay."""
        history = task.history
        if not (history and history[0].event_id == 1 and len(events) == len(history)):
            return  # the run was cached: nothing replayed
        for e in history:  # a loop, not any(<generator>): no generator per task
            if e.event_type == EventType.WORKFLOW_TASK_COMPLETED:
                break
        else:
            return  # the run's first task
        entry = self._tokens.get(task.task_token)
        if entry is not None:
            self.wft_replay.children[entry[2]].observe(seconds * self.scale)

    # -- tasks in flight ---------------------------------------------------------------------------

    def _remember(self, token: bytes, child: Histogram, labels: tuple[str, ...]) -> None:
        tokens = self._tokens
        if len(tokens) >= TOKENS_KEPT:
            tokens.pop(next(iter(tokens)))
        tokens[token] = (time.perf_counter(), child, labels)

    def _finish(self, token: bytes) -> tuple[str, ...] | None:
        entry = self._tokens.pop(token, None)
        if entry is None:
            return None
        started, child, labels = entry
        child.observe((time.perf_counter() - started) * self.scale)
        return labels  # type: ignore[no-any-return]

    def polled_workflow_task(self, namespace: str, queue: str, task: Any) -> None:
        tq, poller = _normal_queue(queue)
        if task is None:
            self.poll_empty.children[(namespace, tq, poller)].inc()
            return
        self.poll_succeed.children[(namespace, tq, poller)].inc()
        if task.query is not None:
            return
        labels = (namespace, tq, task.workflow_type)
        self._remember(task.task_token, self.wft_execution.children[labels], labels)
        history = task.history
        if len(history) >= 2 and history[-1].event_type == EventType.WORKFLOW_TASK_STARTED:
            scheduled = history[-2]
            if scheduled.event_type == EventType.WORKFLOW_TASK_SCHEDULED:
                waited = max(0, history[-1].event_time - scheduled.event_time) / 1e6
                self.wft_schedule_to_start.children[(namespace, tq)].observe(waited * self.scale)

    def polled_activity_task(self, namespace: str, queue: str, task: Any) -> None:
        if task is None:
            self.activity_poll_no_task.children[(namespace, queue)].inc()
            return
        self._activity_started(namespace, task)

    def _activity_started(self, namespace: str, task: Any) -> None:
        labels = (namespace, task.task_queue, task.activity_type)
        self._remember(task.task_token, self.activity_execution.children[labels], labels)
        waited = max(0, task.started_time - task.current_attempt_scheduled_time) / 1e6
        self.activity_schedule_to_start.children[labels].observe(waited * self.scale)

    def workflow_task_completing(self, request: Any) -> None:
        """A worker sends a workflow task's completion (counted as it is sent, as temporalio does)."""
        labels = self._finish(request.task_token)
        if labels is not None:
            for c in request.commands:
                outcome = _CLOSE_COMMANDS.get(c.command_type)
                if outcome is not None:
                    self.workflow_closed[outcome].labels(*labels).inc()

    def workflow_task_completed(self, request: Any, result: Any) -> None:
        """The completion was accepted; activities it returns (eager dispatch) start now."""
        if isinstance(result, list):
            ns = request.namespace
            for activity_task in result:
                if getattr(activity_task, "activity_type", None) is not None:
                    self._activity_started(ns, activity_task)

    def workflow_task_failed(self, request: Any) -> None:
        labels = self._finish(request.task_token)
        if labels is not None:
            self.wft_failed.labels(*labels, request.cause).inc()

    def activity_done(self, token: bytes, outcome: str) -> None:
        labels = self._finish(token)
        if labels is not None:
            if outcome == "failed":
                self.activity_failed.labels(*labels).inc()
            elif outcome == "canceled":
                self.activity_cancelled.labels(*labels).inc()


_LONG = frozenset(
    {"poll_workflow_task_queue", "poll_activity_task_queue", "start_workflow_execution_and_wait"}
)


class SdkCallMetrics:
    """Records a client's calls into ``metrics``: an observer of the in-process transport
    (``LocalService``), and the heart of ``MeteredService`` for the others."""

    def __init__(self, metrics: SdkMetrics, namespace: str = "") -> None:
        self.metrics = metrics
        self.namespace = namespace
        """The client's namespace: the label of calls that name none (those with a task token)."""

    def hook(self, name: str) -> tuple[Callable[..., None] | None, Callable[..., None]] | None:
        if name.startswith("_"):
            return None
        m = self.metrics
        operation = _operation(name)
        long = name in _LONG
        waits = name == "get_workflow_execution_history"
        scale = m.scale
        before_hook = _BEFORE.get(name)
        after_hook = _AFTER.get(name)
        children: dict[str, Histogram] = {}
        long_children: dict[str, Histogram] = {}
        default = self.namespace

        # Runs once per call, so it calls no helpers (they were a measurable share of the metrics'
        # cost): the namespace is found inline and the child is one lookup.
        def after(
            args: tuple[Any, ...], kwargs: dict[str, Any], elapsed: float, result: Any, error: Any
        ) -> None:
            namespace: Any = None
            if args:
                first = args[0]
                if type(first) is str:
                    namespace = first
                elif type(first) is not bytes:  # a task token names none (and getattr would raise)
                    namespace = getattr(first, "namespace", None)
            if type(namespace) is not str:
                namespace = kwargs.get("namespace")
            if not namespace or type(namespace) is not str:
                namespace = default
            slow = long or (waits and getattr(args[0], "wait_new_event", False))
            cache = long_children if slow else children
            child = cache.get(namespace)
            if child is None:
                family = m.long_request_latency if slow else m.request_latency
                child = cache[namespace] = family.children[(operation, namespace)]
            value = elapsed * scale
            child.counts[bisect_left(child.bounds, value)] += 1  # child.observe(value), inline
            child.sum += value
            if error is not None:
                if isinstance(error, Exception) and not isinstance(error, asyncio.CancelledError):
                    status = getattr(error, "status", None) or getattr(error, "code", None)
                    failure = m.long_request_failure if slow else m.request_failure
                    failure.labels(operation, namespace, str(status or type(error).__name__)).inc()
            elif after_hook is not None:
                after_hook(m, args, kwargs, namespace, result)

        # before(args, kwargs): a partial calls the hook with no frame of its own.
        before = None if before_hook is None else functools.partial(before_hook, m)
        return before, after


class MeteredService:
    """A ``WorkflowService`` (over the network) that records every call into ``metrics``."""

    def __init__(self, inner: Any, metrics: SdkMetrics, namespace: str = "") -> None:
        self.inner = inner
        observer = SdkCallMetrics(metrics, namespace)
        for name in _service_methods():
            fn = getattr(inner, name, None)
            hooks = observer.hook(name)
            if fn is not None and hooks is not None:
                setattr(self, name, self._wrap(fn, *hooks))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @staticmethod
    def _wrap(fn: Callable[..., Any], before: Any, after: Any) -> Callable[..., Any]:
        clock = time.perf_counter

        async def call(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before(args, kwargs)
            started = clock()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as e:
                after(args, kwargs, clock() - started, None, e)
                raise
            after(args, kwargs, clock() - started, result, None)
            return result

        return call


def _service_methods() -> list[str]:
    return [n for n, v in vars(WorkflowService).items() if not n.startswith("_") and callable(v)]


def _after_poll_workflow(m: SdkMetrics, args: Any, kwargs: Any, ns: str, result: Any) -> None:
    m.polled_workflow_task(ns, args[1] if len(args) > 1 else kwargs.get("task_queue", ""), result)


def _after_poll_activity(m: SdkMetrics, args: Any, kwargs: Any, ns: str, result: Any) -> None:
    m.polled_activity_task(ns, args[1] if len(args) > 1 else kwargs.get("task_queue", ""), result)


def _after_wft_completed(m: SdkMetrics, args: Any, kwargs: Any, ns: str, result: Any) -> None:
    m.workflow_task_completed(args[0], result)


def _before_wft_completed(m: SdkMetrics, args: Any, kwargs: Any) -> None:
    m.workflow_task_completing(args[0])


def _before_wft_failed(m: SdkMetrics, args: Any, kwargs: Any) -> None:
    m.workflow_task_failed(args[0])


def _activity(outcome: str) -> Callable[..., None]:
    def before(m: SdkMetrics, args: Any, kwargs: Any) -> None:
        m.activity_done(args[0] if args else kwargs.get("task_token", b""), outcome)

    return before


_AFTER: dict[str, Callable[..., None]] = {
    "poll_workflow_task_queue": _after_poll_workflow,
    "poll_activity_task_queue": _after_poll_activity,
    "respond_workflow_task_completed": _after_wft_completed,
}
_BEFORE: dict[str, Callable[..., None]] = {
    # Replies are counted as they are sent: the task's time ends there, and a worker shutting down
    # may abandon the call once the server has the answer.
    "respond_workflow_task_completed": _before_wft_completed,
    "respond_workflow_task_failed": _before_wft_failed,
    "respond_activity_task_completed": _activity("completed"),
    "respond_activity_task_failed": _activity("failed"),
    "respond_activity_task_canceled": _activity("canceled"),
}
