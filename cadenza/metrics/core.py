"""Lock-free counters, histograms and gauges, exported through prometheus-client.

The instruments are updated from one event loop, so they are plain attributes and lists: a
histogram observation is one ``bisect`` and two additions (prometheus-client's own ``Histogram``
takes a lock per bucket and costs several times as much, which the engine's hot paths notice).
Scrapes run on the exporter's thread and read the values as they are; under the GIL a scrape
sees each number whole.

Every family has fixed label names; ``labels(*values)`` returns the child for those values,
created on first use and cached, so callers bind children once and keep them. Hot paths whose
label values vary per call index ``family.children[values]`` instead: a child that exists is then
one dict lookup, with no Python call (``labels`` is one, and it adds up over the ~30 updates of a
workflow). Constant tags (the config's ``tags``, e.g. ``type: frontend``) are added to every
series at scrape time. A family that reaches ``MAX_CHILDREN`` children folds further label values
into one ``_overflow_`` child, so a caller that passes unbounded values cannot grow the registry
without bound.

The busiest call sites (a store call, an in-process service call) update their histogram inline
(``counts[bisect_left(bounds, v)] += 1; sum += v``, what ``Histogram.observe`` does) rather than
calling ``observe``: with metrics on, a workflow's cost is mostly such small calls.

Counters are exposed under their own names without a ``_total`` suffix (typed ``untyped`` in the
text format), as the anchors' servers and temporalio's SDK export them, so their dashboards and
alerts work unchanged.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import HistogramMetricFamily, Metric

MAX_CHILDREN = 2000
OVERFLOW = "_overflow_"


class Counter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


class Gauge:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value


class _Children(dict[tuple[str, ...], Any]):
    """A family's children by label values. Indexing creates a missing child (``__missing__``),
    so a hit costs a plain dict lookup and no Python call."""

    __slots__ = ("family",)

    def __init__(self, family: _Family) -> None:
        super().__init__()
        self.family = family

    def __missing__(self, values: tuple[str, ...]) -> Any:
        family = self.family
        if len(values) != len(family.labelnames):
            raise ValueError(f"{family.name} takes labels {family.labelnames}, got {values}")
        if len(self) >= MAX_CHILDREN:
            overflow = (OVERFLOW,) * len(values)
            child = self.get(overflow)
            if child is None:
                child = self[overflow] = family._new()
            return child  # not stored under ``values``: the dict stays bounded
        child = self[values] = family._new()
        return child


class _Family:
    kind = ""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self.children = _Children(self)

    def _new(self) -> Any:
        raise NotImplementedError

    def labels(self, *values: str) -> Any:
        return self.children[values]

    def series(self) -> list[tuple[tuple[str, ...], Any]]:
        return list(self.children.items())


class CounterFamily(_Family):
    kind = "counter"

    def _new(self) -> Counter:
        return Counter()


class HistogramFamily(_Family):
    kind = "histogram"

    def __init__(self, name: str, doc: str, labelnames: Sequence[str], bounds: Sequence[float]) -> None:
        super().__init__(name, doc, labelnames)
        self.bounds = tuple(sorted(bounds))

    def _new(self) -> Histogram:
        return Histogram(self.bounds)


class GaugeFamily(_Family):
    """A gauge set by its owner, or computed at scrape time by ``callback`` (label values -> value)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        doc: str,
        labelnames: Sequence[str],
        callback: Callable[[], Mapping[tuple[str, ...], float]] | None = None,
    ) -> None:
        super().__init__(name, doc, labelnames)
        self.callback = callback

    def _new(self) -> Gauge:
        return Gauge()

    def values(self) -> list[tuple[tuple[str, ...], float]]:
        if self.callback is not None:
            return list(self.callback().items())
        return [(k, g.value) for k, g in self.series()]


class CallbackCounter:
    """A counter kept by its owner (plain integers it increments) and read at scrape time."""

    kind = "callback_counter"

    def __init__(
        self,
        name: str,
        doc: str,
        labelnames: Sequence[str],
        callback: Callable[[], Mapping[tuple[str, ...], float]],
    ) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = tuple(labelnames)
        self.callback = callback


class DerivedCounter:
    """A counter whose value is the observation count of a histogram (``service_requests`` is the
    count of ``service_latency``): one update per call instead of two."""

    kind = "derived"

    def __init__(self, name: str, doc: str, source: HistogramFamily) -> None:
        self.name = name
        self.doc = doc
        self.source = source
        self.labelnames = source.labelnames


class MetricsRegistry:
    """Families by name, exported to a ``prometheus_client.CollectorRegistry``."""

    def __init__(self, *, prefix: str = "", tags: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix
        self.tags = dict(tags or {})
        self._families: dict[str, Any] = {}
        self.collector_registry = CollectorRegistry(auto_describe=False)
        self.collector_registry.register(self)  # type: ignore[arg-type]
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _add(self, family: Any) -> Any:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is defined twice")
        clash = set(family.labelnames) & set(self.tags)
        if clash:
            raise ValueError(f"tags {sorted(clash)} clash with the labels of {family.name}")
        self._families[family.name] = family
        return family

    def counter(self, name: str, doc: str, labelnames: Sequence[str] = ()) -> CounterFamily:
        return self._add(CounterFamily(self.prefix + name, doc, labelnames))  # type: ignore[no-any-return]

    def histogram(
        self, name: str, doc: str, labelnames: Sequence[str], bounds: Sequence[float]
    ) -> HistogramFamily:
        return self._add(HistogramFamily(self.prefix + name, doc, labelnames, bounds))  # type: ignore[no-any-return]

    def gauge(
        self,
        name: str,
        doc: str,
        labelnames: Sequence[str] = (),
        callback: Callable[[], Mapping[tuple[str, ...], float]] | None = None,
    ) -> GaugeFamily:
        return self._add(GaugeFamily(self.prefix + name, doc, labelnames, callback))  # type: ignore[no-any-return]

    def callback_counter(
        self,
        name: str,
        doc: str,
        labelnames: Sequence[str],
        callback: Callable[[], Mapping[tuple[str, ...], float]],
    ) -> CallbackCounter:
        return self._add(CallbackCounter(self.prefix + name, doc, labelnames, callback))  # type: ignore[no-any-return]

    def derived_counter(self, name: str, doc: str, source: HistogramFamily) -> DerivedCounter:
        return self._add(DerivedCounter(self.prefix + name, doc, source))  # type: ignore[no-any-return]

    def names(self) -> list[str]:
        return sorted(self._families)

    # -- exposition ---------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        tag_names = tuple(self.tags)
        tag_values = tuple(self.tags.values())
        for family in list(self._families.values()):
            names = family.labelnames + tag_names
            kind = family.kind
            if kind == "histogram":
                h = HistogramMetricFamily(family.name, family.doc, labels=names)
                les = [_le(b) for b in family.bounds] + ["+Inf"]
                for values, child in family.series():
                    running = 0
                    buckets = []
                    for le, n in zip(les, list(child.counts), strict=True):
                        running += n
                        buckets.append((le, running))
                    h.add_metric(list(values + tag_values), buckets, child.sum)
                yield h
            elif kind == "gauge":
                g = Metric(family.name, family.doc, "gauge")
                for values, value in family.values():
                    g.add_sample(family.name, dict(zip(names, values + tag_values, strict=True)), value)
                yield g
            else:
                c = Metric(family.name, family.doc, "unknown")
                if kind == "derived":
                    pairs: Iterable[tuple[tuple[str, ...], float]] = (
                        (v, sum(child.counts)) for v, child in family.source.series()
                    )
                elif kind == "callback_counter":
                    pairs = list(family.callback().items())
                else:
                    pairs = ((v, child.value) for v, child in family.series())
                for values, value in pairs:
                    c.add_sample(family.name, dict(zip(names, values + tag_values, strict=True)), value)
                yield c

    def serve(self, address: str) -> int:
        """Serves the metrics over HTTP at ``host:port`` (``/metrics``; port 0 picks a free one);
        returns the port."""
        host, port = split_address(address)
        server, thread = start_http_server(port, host, registry=self.collector_registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    def stop_serving(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as its parts; raises ``ValueError`` naming the problem."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _le(bound: float) -> str:
    return repr(float(bound))


def exponential(start: float, factor: float, count: int) -> tuple[float, ...]:
    return tuple(start * factor**i for i in range(count))
