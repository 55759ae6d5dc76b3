"""The same visibility contract and query corpus on a real Elasticsearch.

Needs the server of `cadenza dev services up elasticsearch` (or CADENZA_TEST_ELASTICSEARCH): the
``elasticsearch_url`` fixture fails, never skips, when it does not answer. Each store gets its own
index, dropped afterwards.
"""

from __future__ import annotations

import uuid

import pytest

from cadenza.ops.devservices.pytest_plugin import elasticsearch_address
from cadenza.visibility.es_store import ElasticsearchVisibilityStore
from cadenza.visibility.store import VisibilityStore

from .contract import VisibilityContract, run

pytestmark = pytest.mark.elasticsearch


class TestElasticsearchVisibility(VisibilityContract):
    async def make_store(self, request: pytest.FixtureRequest) -> VisibilityStore:
        url: str = request.getfixturevalue("elasticsearch_url")
        return await ElasticsearchVisibilityStore.open(
            url, index=f"cadenza_visibility_test_{uuid.uuid4().hex[:12]}"
        )

    async def reopen(self, store: VisibilityStore) -> VisibilityStore:
        assert isinstance(store, ElasticsearchVisibilityStore)
        return await ElasticsearchVisibilityStore.open(elasticsearch_address(), index=store.index)

    async def settle(self, store: VisibilityStore) -> None:
        assert isinstance(store, ElasticsearchVisibilityStore)
        await store.refresh()

    async def dispose(self, store: VisibilityStore) -> None:
        assert isinstance(store, ElasticsearchVisibilityStore)
        await store.drop()
        await store.close()


def test_setup_is_idempotent_and_mapping_follows_the_template(elasticsearch_url: str) -> None:
    async def scenario() -> dict[str, object]:
        store = await ElasticsearchVisibilityStore.open(
            elasticsearch_url, index=f"cadenza_vis_setup_{uuid.uuid4().hex[:8]}"
        )
        try:
            await store.setup()
            await store.add_search_attributes({"DueDate": "Datetime", "Tags": "KeywordList"})
            mapping = store.client.indices.get_mapping(index=store.index)[store.index]["mappings"]
            return dict(mapping)
        finally:
            await store.drop()
            await store.close()

    mapping = run(scenario())
    props = mapping["properties"]
    assert isinstance(props, dict)
    assert props["StartTime"]["type"] == "date_nanos" and props["WorkflowId"]["type"] == "keyword"
    assert props["search_attributes"]["properties"] == {
        "DueDate": {"type": "date_nanos", "format": "strict_date_optional_time_nanos"},
        "Tags": {"type": "keyword"},
    }
    assert mapping["_meta"] == {"search_attributes": {"DueDate": "Datetime", "Tags": "KeywordList"}}
