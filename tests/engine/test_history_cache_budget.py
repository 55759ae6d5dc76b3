"""The run cache is bounded by the weight of the histories it holds, not only by its run count."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from cadenza.engine.clock import ManualClock
from cadenza.engine.history.mutable_state import ExecutionInfo, MutableState, encode_state
from cadenza.engine.history.shard import ShardContext
from cadenza.engine.persistence.protocols import HistoryNode
from cadenza.schemas.codec import encode_events
from cadenza.schemas.events import EventType, HistoryEvent

NS = "ns"


def _signals(n: int) -> list[HistoryEvent]:
    return [
        HistoryEvent(i, 1_000 + i, EventType.WORKFLOW_EXECUTION_SIGNALED, 0, 0, {"signal_name": f"s{i}"})
        for i in range(1, n + 1)
    ]


@dataclass
class _FakeStores:
    """Runs with a stored state and one history node each; counts history reads."""

    runs: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    history_reads: int = 0

    def add_run(self, run_id: str, events: int) -> None:
        ms = MutableState(ExecutionInfo(NS, f"wf-{run_id}", run_id, tree_id=run_id, branch_id="b"))
        ms.next_event_id = events + 1
        self.runs[run_id] = (encode_state(ms), encode_events(_signals(events)))

    async def get_workflow_execution(self, shard_id: int, ns: str, wid: str, rid: str) -> Any:
        return SimpleNamespace(data=self.runs[rid][0], db_version=1)

    async def read_history_branch(self, tree_id: str, branch_id: str, **_: Any) -> Any:
        self.history_reads += 1
        return [HistoryNode(1, 1, self.runs[tree_id][1], 0)], None

    @property
    def executions(self) -> _FakeStores:
        return self

    @property
    def history(self) -> _FakeStores:
        return self


def _shard(stores: _FakeStores, budget: int) -> ShardContext:
    fake: Any = stores  # only the reads the run cache makes
    return ShardContext(
        0, fake, ManualClock(), "host", on_new_tasks=lambda *_: None, history_cache_events=budget
    )


def test_least_recently_used_histories_are_dropped_past_the_budget() -> None:
    async def main() -> None:
        stores = _FakeStores()
        for rid in ("r1", "r2", "r3"):
            stores.add_run(rid, 40)
        shard = _shard(stores, budget=100)
        ctxs = {rid: shard.run_context((NS, f"wf-{rid}", rid)) for rid in ("r1", "r2", "r3")}
        for ctx in ctxs.values():
            assert len(await shard.load_events(ctx)) == 40

        # 120 events passed the budget of 100: the oldest runs' events go, down to 3/4 of it.
        assert ctxs["r1"].events is None and ctxs["r2"].events is None
        assert ctxs["r3"].events is not None
        assert shard.cached_history_events() == 40
        # Only the decoded history goes: the states (and the runs) stay cached.
        assert all(c.state is not None for c in ctxs.values())
        assert len(shard.cached_runs()) == 3

        # A dropped history is read again, whole, when asked for.
        reads = stores.history_reads
        again = await shard.load_events(ctxs["r1"])
        assert [e.event_id for e in again] == list(range(1, 41))
        assert stores.history_reads == reads + 1
        assert shard.cached_history_events() <= 100

    asyncio.run(main())


def test_within_the_budget_histories_stay_cached() -> None:
    async def main() -> None:
        stores = _FakeStores()
        for rid in ("r1", "r2"):
            stores.add_run(rid, 40)
        shard = _shard(stores, budget=100)
        ctxs = [shard.run_context((NS, f"wf-{rid}", rid)) for rid in ("r1", "r2")]
        for ctx in ctxs:
            await shard.load_events(ctx)
        reads = stores.history_reads
        for ctx in ctxs:
            await shard.load_events(ctx)
        assert stores.history_reads == reads  # served from the cache
        assert shard.cached_history_events() == 80

    asyncio.run(main())


def test_a_history_larger_than_the_budget_is_kept_while_its_run_is_used() -> None:
    async def main() -> None:
        stores = _FakeStores()
        stores.add_run("big", 150)
        stores.add_run("small", 10)
        shard = _shard(stores, budget=100)
        small = shard.run_context((NS, "wf-small", "small"))
        big = shard.run_context((NS, "wf-big", "big"))
        await shard.load_events(small)
        assert len(await shard.load_events(big)) == 150
        assert big.events is not None and small.events is None

    asyncio.run(main())
