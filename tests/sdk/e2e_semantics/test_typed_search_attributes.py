"""Typed search attributes (temporalio's ``SearchAttributeKey`` / ``TypedSearchAttributes``) and
the untyped one-element-list values of temporalio's ``hello_search_attributes``."""

from __future__ import annotations

from datetime import datetime

import pytest
from e2e.conftest import run_in_env

from cadenza.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .temporal_workflows import COUNT, CUSTOMER, FLAG, ISSUED_AT, NOTE, SCORE, TAGS, WHEN, LegacyTags, Tagging
from .waits import eventually


def test_typed_values_at_start_upserted_read_in_workflow_and_described() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="typed", workflows=[Tagging]):
            handle = await env.client.start_workflow(
                Tagging.run,
                id="typed-1",
                task_queue="typed",
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(CUSTOMER, "c-1"),
                        SearchAttributePair(COUNT, 3),
                        SearchAttributePair(FLAG, True),
                        SearchAttributePair(NOTE, "first order"),
                    ]
                ),
            )
            await eventually(lambda: _described(handle, "CustomDoubleField"))
            desc = await handle.describe()
            typed = desc.typed_search_attributes
            assert typed[CUSTOMER] == "c-2" and typed[COUNT] == 3 and typed.get(SCORE) == 1.5
            assert typed[TAGS] == ["red", "blue"] and typed[WHEN] == ISSUED_AT
            assert FLAG not in typed and typed.get(FLAG) is None
            assert desc.search_attributes["CustomKeywordField"] == "c-2"
            assert isinstance(desc.search_attributes["CustomDatetimeField"], datetime)
            assert typed[NOTE] == "first order"
            with pytest.raises(KeyError):
                typed[FLAG]
            # Visibility indexed the typed values: they answer list queries.
            await eventually(lambda: _listed(env, "CustomKeywordField = 'c-2' AND CustomIntField = 3"))
            await handle.signal(Tagging.finish)
            result = await handle.result()
        assert result == {
            "before": ["c-1", 3, True, "first order"],
            "after": ["c-2", 3, 1.5, ["red", "blue"], ISSUED_AT.isoformat(), False],
        }
        await Replayer(workflows=[Tagging]).replay_workflow(await handle.fetch_history())

    run_in_env(scenario)


def test_untyped_one_element_lists_as_temporalio_writes_them() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="legacy", workflows=[LegacyTags]):
            handle = await env.client.start_workflow(
                LegacyTags.run,
                id="legacy-1",
                task_queue="legacy",
                search_attributes={"CustomKeywordField": ["old-value"]},
            )
            await eventually(lambda: _listed(env, "CustomKeywordField = 'new-value'"))
            desc = await handle.describe()
            assert desc.search_attributes.get("CustomKeywordField") == ["new-value"]
            assert desc.typed_search_attributes[SearchAttributeKey.for_keyword("CustomKeywordField")] == (
                "new-value"
            )
            await handle.signal(LegacyTags.finish)
            await handle.result()

    run_in_env(scenario)


def test_typed_collection_semantics() -> None:
    attrs = TypedSearchAttributes([SearchAttributePair(COUNT, 2)])
    assert len(attrs) == 1 and attrs[0].key == COUNT and COUNT in attrs
    assert attrs.get(SearchAttributeKey.for_float("CustomIntField")) == 2.0
    updated = attrs.updated(SearchAttributePair(COUNT, 5), SearchAttributePair(CUSTOMER, "x"))
    assert updated[COUNT] == 5 and updated[CUSTOMER] == "x" and attrs[COUNT] == 2
    assert TypedSearchAttributes.empty == TypedSearchAttributes()
    assert TAGS.indexed_value_type is SearchAttributeIndexedValueType.KEYWORD_LIST
    assert WHEN.value_type is datetime
    with pytest.raises(ValueError, match="given twice"):
        TypedSearchAttributes([SearchAttributePair(COUNT, 1), SearchAttributePair(COUNT, 2)])


async def _described(handle: object, name: str) -> bool:
    return name in (await handle.describe()).search_attributes  # type: ignore[attr-defined]


async def _listed(env: WorkflowEnvironment, query: str) -> bool:
    page = await env.client.service.list_workflow_executions(  # type: ignore[attr-defined]
        env.client.namespace, query, 10, None
    )
    return len(page.executions) == 1
