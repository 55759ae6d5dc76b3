"""The lock-free instruments and their exposition."""

from __future__ import annotations

import pytest

from cadenza.metrics import core
from cadenza.metrics.core import MetricsRegistry

from .scrape import scrape_registry


def test_histogram_buckets_are_cumulative_with_le_semantics() -> None:
    r = MetricsRegistry(tags={"type": "frontend"})
    h = r.histogram("x_latency", "doc", ("operation",), (0.1, 1.0))
    child = h.labels("Op")
    for v in (0.05, 0.1, 0.5, 2.0):
        child.observe(v)
    r.derived_counter("x_requests", "doc", h)
    s = scrape_registry(r)
    buckets = {lab["le"]: v for lab, v in s.samples["x_latency_bucket"]}
    assert buckets == {"0.1": 2, "1.0": 3, "+Inf": 4}
    assert s.value("x_latency_count") == 4 and s.value("x_latency_sum") == pytest.approx(2.65)
    assert s.value("x_requests", operation="Op", type="frontend") == 4
    assert s.family_types["x_requests"] == "unknown"  # untyped: no _total suffix


def test_callback_gauges_and_counters_read_their_owner_at_scrape_time() -> None:
    r = MetricsRegistry()
    state = {"n": 1}
    r.gauge("g", "doc", ("k",), lambda: {("a",): state["n"] * 1.5})
    r.callback_counter("c", "doc", ("k",), lambda: {("a",): state["n"]})
    state["n"] = 4
    s = scrape_registry(r)
    assert s.value("g", k="a") == 6.0 and s.value("c", k="a") == 4


def test_label_sets_past_the_cap_fold_into_one_overflow_series(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "MAX_CHILDREN", 3)
    r = MetricsRegistry()
    c = r.counter("c", "doc", ("id",))
    for i in range(10):
        c.labels(str(i)).inc()
    assert len(c.children) == 4
    assert c.labels("_overflow_").value == 7


def test_tags_may_not_clash_with_labels_and_names_are_unique() -> None:
    r = MetricsRegistry(tags={"operation": "x"})
    with pytest.raises(ValueError, match="clash"):
        r.counter("c", "doc", ("operation",))
    r.counter("d", "doc")
    with pytest.raises(ValueError, match="twice"):
        r.counter("d", "doc")


def test_serve_on_port_zero_reports_the_port_and_stops() -> None:
    from .scrape import scrape_url

    r = MetricsRegistry()
    r.counter("served", "doc").labels().inc()
    port = r.serve("127.0.0.1:0")
    try:
        assert scrape_url(f"http://127.0.0.1:{port}/metrics").value("served") == 1
    finally:
        r.stop_serving()
    assert r.port is None
