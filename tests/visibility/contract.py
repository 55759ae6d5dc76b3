"""The visibility-store contract: the query corpus plus write, versioning and error cases.

Each backend's test module subclasses :class:`VisibilityContract` with ``make_store`` (a fresh, empty
store), ``reopen`` (a second handle on the same data, as another process would have) and ``settle``
(make writes searchable). Every backend passes exactly the same assertions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.visibility.errors import InvalidPageTokenError, QueryError, SearchAttributeError
from cadenza.visibility.record import VisibilityRecord
from cadenza.visibility.store import VisibilityStore

from .corpus import CASES, CUSTOM_ATTRIBUTES, NAMES, NS, OTHER_NS, POPULATION, Case

R = TypeVar("R")
TIMEOUT_S = 60.0


def run(coro: Awaitable[R]) -> R:
    """Runs one coroutine in a fresh event loop (the stores are not bound to a loop)."""

    async def main() -> R:
        return await asyncio.wait_for(coro, TIMEOUT_S)

    return asyncio.run(main())


def _stale(r: VisibilityRecord) -> VisibilityRecord:
    """An older version of ``r``, as a late or replayed visibility task would carry it."""
    return dataclasses.replace(
        r,
        workflow_type="Stale",
        status=ExecutionStatus.RUNNING,
        close_time=0,
        search_attributes={},
        task_id=r.task_id - 500,
    )


def _record(run_id: str, task_id: int, **kw: Any) -> VisibilityRecord:
    base: dict[str, Any] = dict(
        namespace_id=NS,
        workflow_id=f"wf-{run_id}",
        run_id=run_id,
        workflow_type="Transcode",
        start_time=1_800_000_000_000_000,
        execution_time=1_800_000_000_000_000,
        task_id=task_id,
    )
    base.update(kw)
    return VisibilityRecord(**base)


def _case_id(case: Case) -> str:
    return f"{CASES.index(case):03d}:{case.namespace}:{case.query[:60] or '<all>'}"


class VisibilityContract:
    """Subclass and implement the three hooks; pytest collects the subclass."""

    async def make_store(self, request: pytest.FixtureRequest) -> VisibilityStore:
        raise NotImplementedError

    async def reopen(self, store: VisibilityStore) -> VisibilityStore:
        raise NotImplementedError

    async def settle(self, store: VisibilityStore) -> None:
        """Makes every write so far visible to reads (a no-op for stores that are consistent at once)."""

    async def dispose(self, store: VisibilityStore) -> None:
        await store.close()

    # -- fixtures ------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def corpus_store(cls, request: pytest.FixtureRequest) -> Iterator[VisibilityStore]:
        """A store holding the population, written in shuffled batches with stale versions mixed in."""
        self = cls()  # the hooks keep no state; one instance serves the whole class

        async def load() -> VisibilityStore:
            store = await self.make_store(request)
            await store.add_search_attributes(CUSTOM_ATTRIBUTES)
            writes = list(POPULATION) + [_stale(r) for r in POPULATION[::2]]
            random.Random(7).shuffle(writes)
            for i in range(0, len(writes), 64):
                await store.upsert_many(writes[i : i + 64])
            for r in POPULATION[1::4]:  # late duplicates after everything else
                await store.upsert(_stale(r))
            await self.settle(store)
            return store

        store = run(load())
        yield store
        run(self.dispose(store))

    @pytest.fixture
    def store(self, request: pytest.FixtureRequest) -> Iterator[VisibilityStore]:
        """A fresh store with the corpus' custom attributes registered."""

        async def make() -> VisibilityStore:
            store = await self.make_store(request)
            await store.add_search_attributes(CUSTOM_ATTRIBUTES)
            return store

        store = run(make())
        yield store
        run(self.dispose(store))

    # -- the corpus ------------------------------------------------------------------------------

    @pytest.mark.parametrize("case", CASES, ids=_case_id)
    def test_corpus_list_pages_through_expected_order(
        self, corpus_store: VisibilityStore, case: Case
    ) -> None:
        async def pages() -> list[list[str]]:
            out: list[list[str]] = []
            token: bytes | None = None
            while True:
                records, token = await corpus_store.list(case.namespace, case.query, case.page_size, token)
                out.append([r.run_id for r in records])
                if token is None:
                    return out
                assert len(out) < 200, "paging does not end"

        got = run(pages())
        assert [run_id for page in got for run_id in page] == case.expected()
        assert all(len(page) == case.page_size for page in got[:-1])
        assert got[-1] or len(got) == 1, "a token was returned for an empty last page"

    @pytest.mark.parametrize("case", CASES, ids=_case_id)
    def test_corpus_count_and_group_by_status(self, corpus_store: VisibilityStore, case: Case) -> None:
        expected = case.expected()
        by_id = {r.run_id: r for r in POPULATION}
        statuses = Counter(NAMES[by_id[run_id].status] for run_id in expected)
        assert run(corpus_store.count(case.namespace, case.query)) == len(expected)
        assert run(corpus_store.count_group_by_status(case.namespace, case.query)) == dict(statuses)

    @pytest.mark.parametrize("case", CASES[::3], ids=_case_id)
    def test_corpus_scan_returns_each_match_once(self, corpus_store: VisibilityStore, case: Case) -> None:
        async def scan() -> list[str]:
            seen: list[str] = []
            token: bytes | None = None
            while True:
                records, token = await corpus_store.scan(case.namespace, case.query, 50, token)
                seen += [r.run_id for r in records]
                if token is None:
                    return seen

        got = run(scan())
        assert len(got) == len(set(got))
        assert set(got) == set(case.expected())

    def test_records_read_back_exactly_as_written(self, corpus_store: VisibilityStore) -> None:
        for namespace in (NS, OTHER_NS):
            records, token = run(corpus_store.list(namespace, "ORDER BY RunId", 1000))
            assert token is None
            expected = sorted((r for r in POPULATION if r.namespace_id == namespace), key=lambda r: r.run_id)
            assert records == expected

    # -- writes and versioning -------------------------------------------------------------------

    def test_late_update_never_overwrites_a_newer_one(self, store: VisibilityStore) -> None:
        async def scenario() -> None:
            await store.upsert(
                _record("r1", 10, status=ExecutionStatus.COMPLETED, close_time=1_800_000_100_000_000)
            )
            await store.upsert(_record("r1", 9, status=ExecutionStatus.RUNNING))
            await store.upsert(_record("r1", 10, workflow_type="SameTaskIdReplayed"))
            await self.settle(store)
            (got,), _ = await store.list(NS, "RunId = 'r1'")
            assert (got.status, got.task_id, got.workflow_type) == (
                ExecutionStatus.COMPLETED,
                10,
                "Transcode",
            )
            await store.upsert(_record("r1", 11, search_attributes={"Priority": 3}))
            await self.settle(store)
            assert await store.count(NS, "Priority = 3 AND ExecutionStatus = 'Running'") == 1

        run(scenario())

    def test_delete_is_idempotent_and_respects_versions(self, store: VisibilityStore) -> None:
        async def scenario() -> None:
            await store.upsert_many([_record("a", 5), _record("b", 5)])
            await store.delete(NS, "wf-missing", "missing")
            await store.delete(NS, "wf-a", "a", task_id=4)  # older than the record: kept
            await store.delete(NS, "wf-b", "b", task_id=6)
            await store.delete(NS, "wf-b", "b")
            await self.settle(store)
            assert [r.run_id for r in (await store.list(NS))[0]] == ["a"]

        run(scenario())

    def test_bad_search_attribute_rejects_the_batch_without_writing(self, store: VisibilityStore) -> None:
        good = _record("ok", 1, search_attributes={"Priority": 1})
        bad_type = _record("bad", 1, search_attributes={"Priority": "high"})
        with pytest.raises(SearchAttributeError, match=r"Priority has type Int: value 'high'"):
            run(store.upsert_many([good, bad_type]))
        with pytest.raises(
            SearchAttributeError, match=r"unknown search attribute Priorty \(did you mean Priority"
        ):
            run(store.upsert(_record("bad2", 1, search_attributes={"Priorty": 1})))
        with pytest.raises(SearchAttributeError, match="WorkflowType is a system attribute"):
            run(store.upsert(_record("bad3", 1, search_attributes={"WorkflowType": "x"})))
        run(self.settle(store))
        assert run(store.count(NS)) == 0

    def test_values_are_coerced_to_their_types(self, store: VisibilityStore) -> None:
        async def scenario() -> VisibilityRecord:
            attrs = {"Score": 2, "DueDate": "2026-11-01T01:00:00+01:00", "Tags": ("a", "b")}
            await store.upsert(_record("c", 1, search_attributes=attrs))
            await self.settle(store)
            (got,), _ = await store.list(
                NS, "Score = 2.0 AND DueDate = '2026-11-01T00:00:00Z' AND Tags = 'b'"
            )
            return got

        got = run(scenario())
        assert got.search_attributes == {
            "Score": 2.0,
            "DueDate": datetime(2026, 11, 1, tzinfo=UTC),
            "Tags": ["a", "b"],
        }

    # -- search attributes -------------------------------------------------------------------------

    def test_search_attributes_registry(self, store: VisibilityStore) -> None:
        async def scenario() -> None:
            await store.add_search_attributes({"Priority": "Int"})  # same type again: no-op
            with pytest.raises(
                SearchAttributeError, match="Priority already has type Int: cannot make it Keyword"
            ):
                await store.add_search_attributes({"Priority": "Keyword", "Brand": "Keyword"})
            with pytest.raises(SearchAttributeError, match="unknown type 'Float'"):
                await store.add_search_attributes({"Ratio": "Float"})
            with pytest.raises(SearchAttributeError, match="ExecutionStatus is a system attribute"):
                await store.add_search_attributes({"executionstatus": "Keyword"})
            attributes = await store.get_search_attributes()
            assert "Brand" not in attributes  # all or none
            assert attributes["Tags"].value == "KeywordList" and attributes["StartTime"].value == "Datetime"

        run(scenario())

    def test_attribute_added_elsewhere_is_usable_without_restart(self, store: VisibilityStore) -> None:
        async def scenario() -> None:
            other = await self.reopen(store)
            try:
                await other.add_search_attributes({"Brand": "Keyword"})
                await store.upsert(_record("x", 1, search_attributes={"Brand": "acme"}))
                await self.settle(store)
                assert await store.count(NS, "Brand = 'acme'") == 1
            finally:
                await other.close()

        run(scenario())

    # -- bad input ---------------------------------------------------------------------------------

    def test_bad_queries_name_the_position(self, store: VisibilityStore) -> None:
        with pytest.raises(QueryError, match=r"StartTime has type Datetime: value 'yesterday'.*position 12"):
            run(store.list(NS, "StartTime > 'yesterday'"))
        with pytest.raises(QueryError, match=r"unknown search attribute Prio \(did you mean Priority\?\)"):
            run(store.count(NS, "Prio = 1"))

    def test_page_tokens_are_checked(self, store: VisibilityStore) -> None:
        async def scenario() -> None:
            await store.upsert_many(
                [_record(f"p{i}", 1, start_time=1_800_000_000_000_000 + i) for i in range(3)]
            )
            await self.settle(store)
            _, token = await store.list(NS, "", 1)
            assert token is not None
            with pytest.raises(InvalidPageTokenError, match="ORDER BY StartTime DESC"):
                await store.list(NS, "ORDER BY StartTime ASC", 1, token)
            with pytest.raises(InvalidPageTokenError):
                await store.list(NS, "", 1, b"garbage")
            with pytest.raises(ValueError, match="page_size"):
                await store.list(NS, "", 0)

        run(scenario())
