"""Gauges that need the bus to compute: replication and visibility lag, DLQ sizes, consumer lag.

These go past the anchors, whose dashboards leave replication and visibility lag to log lines. A
background task in the server's event loop refreshes them every ``interval_s`` (the exporter's
thread cannot await the bus), so a scrape reads values at most that old:

* ``replication_lag_seconds{source_cluster}``: the last batch applied from that cluster, from its
  write there to durable here; ``replication_lag_messages{source_cluster}``: messages of its topic
  not applied yet; ``replication_dlq_size{source_cluster}``: its messages in this cluster's
  replication DLQ; ``replication_backlog``: this cluster's replication tasks not yet published.
* ``visibility_indexer_lag``: visibility messages not indexed yet; ``visibility_dlq_size``: records
  in the visibility DLQ.
* ``bus_consumer_lag{group, topic}``: every consumer group this process runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cadenza.metrics.server import ServerMetrics

log = logging.getLogger("cadenza.metrics")

DLQ_READ_LIMIT = 10_000


class ServerGauges:
    def __init__(self, metrics: ServerMetrics, host: Any, *, interval_s: float = 5.0) -> None:
        r = metrics.registry
        self.host = host
        self.interval_s = interval_s
        src = ("source_cluster",)
        self.replication_lag_seconds = r.gauge(
            "replication_lag_seconds", "Lag of the last batch applied from a source cluster (seconds)", src
        )
        self.replication_lag_messages = r.gauge(
            "replication_lag_messages", "Messages of a source cluster's topic not applied here yet", src
        )
        self.replication_dlq_size = r.gauge(
            "replication_dlq_size", "Messages from a source cluster in this cluster's replication DLQ", src
        )
        self.replication_backlog = r.gauge(
            "replication_backlog", "Replication tasks written here and not yet published"
        )
        self.visibility_indexer_lag = r.gauge("visibility_indexer_lag", "Visibility messages not indexed yet")
        self.visibility_dlq_size = r.gauge("visibility_dlq_size", "Records in the visibility DLQ")
        self.bus_consumer_lag = r.gauge(
            "bus_consumer_lag", "Messages a consumer group has not committed yet", ("group", "topic")
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cadenza-metrics-gauges")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.debug("refreshing metrics gauges failed: %s", e)
            await asyncio.sleep(self.interval_s)

    async def refresh(self) -> None:
        host = self.host
        indexer = getattr(host, "_indexer", None)
        if indexer is not None:
            runner = indexer.runner
            lag = await self._consumer_lag(runner)
            self.visibility_indexer_lag.labels().set(sum(lag.values()))
            self.visibility_dlq_size.labels().set(await _dlq_depth(runner.bus, runner.dlq_topic))
        else:
            self.visibility_indexer_lag.labels().set(0)
            self.visibility_dlq_size.labels().set(0)
        self.replication_backlog.labels().set(host.queues.replication_backlog())
        replication = getattr(host, "replication", None)
        if replication is not None:
            await self._replication(replication)

    async def _consumer_lag(self, runner: Any) -> dict[str, int]:
        out: dict[str, int] = {}
        for topic in runner.topics:
            try:
                marks = await runner.bus.watermarks(topic)
                committed = await runner.bus.committed(runner.group, topic)
            except Exception as e:
                log.debug("lag of %s on %s unavailable: %s", runner.group, topic, e)
                continue
            lag = 0
            for p, (low, high) in marks.items():
                done = committed[p].offset if p in committed else low
                lag += max(0, high - done)
            out[topic] = lag
            self.bus_consumer_lag.labels(runner.group, topic).set(lag)
        return out

    async def _replication(self, replication: Any) -> None:
        from cadenza.engine.bus.dlq import read_dlq

        applier = replication.applier
        by_topic = {t.topic: name for name, t in applier.sources.items()}
        lags = await self._consumer_lag(applier.runner)
        sizes = dict.fromkeys(applier.sources, 0)
        try:
            letters = await read_dlq(replication.config.bus, replication.own.dlq_topic, limit=DLQ_READ_LIMIT)
        except Exception as e:
            log.debug("reading the replication DLQ failed: %s", e)
            letters = []
        for letter in letters:
            source = by_topic.get(letter.source_topic)
            if source is not None:
                sizes[source] += 1
        for name, t in applier.sources.items():
            last = applier.last_lag_us.get(name)
            self.replication_lag_seconds.labels(name).set(0.0 if last is None else last / 1e6)
            self.replication_lag_messages.labels(name).set(lags.get(t.topic, 0))
            self.replication_dlq_size.labels(name).set(sizes[name])


async def _dlq_depth(bus: Any, dlq_topic: str) -> int:
    from cadenza.engine.bus.dlq import _positions

    try:
        positions = await _positions(bus, dlq_topic)
    except Exception:
        return 0
    return sum(max(0, high - position.offset) for position, high in positions.values())
