"""Elasticsearch from `cadenza dev services`, through the product's elasticsearch 9.x client."""

from __future__ import annotations

import uuid

import pytest
from elasticsearch import Elasticsearch, helpers

pytestmark = pytest.mark.elasticsearch


def test_info_and_ping_pass_the_client_product_check(elasticsearch_url: str) -> None:
    es = Elasticsearch(elasticsearch_url)
    assert es.ping()
    info = es.info()
    assert info["version"]["number"].startswith("8.")
    assert info["tagline"] == "You Know, for Search"


def test_template_bulk_refresh_search(elasticsearch_url: str) -> None:
    es = Elasticsearch(elasticsearch_url)
    prefix = f"cadenza-smoke-{uuid.uuid4().hex[:12]}"
    index = f"{prefix}-visibility"
    es.indices.put_index_template(
        name=prefix,
        index_patterns=[f"{prefix}-*"],
        template={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "properties": {
                    "workflow_id": {"type": "keyword"},
                    "workflow_type": {"type": "keyword"},
                    "status": {"type": "keyword"},
                    "start_time": {"type": "date"},
                    "memo": {"type": "text"},
                }
            },
        },
    )
    try:
        docs = [
            {
                "_index": index,
                "_id": f"wf-{i}",
                "workflow_id": f"wf-{i}",
                "workflow_type": "OrderWorkflow" if i % 2 else "RefundWorkflow",
                "status": "Running" if i < 7 else "Completed",
                "start_time": f"2024-01-{i + 1:02d}T00:00:00Z",
                "memo": f"order number {i}",
            }
            for i in range(10)
        ]
        ok, errors = helpers.bulk(es, docs)
        assert ok == 10 and not errors
        es.indices.refresh(index=index)
        mapping = es.indices.get_mapping(index=index)
        assert mapping[index]["mappings"]["properties"]["workflow_id"]["type"] == "keyword"
        found = es.search(
            index=index,
            query={
                "bool": {
                    "filter": [{"term": {"workflow_type": "OrderWorkflow"}}, {"term": {"status": "Running"}}]
                }
            },
            sort=[{"start_time": "desc"}],
        )
        ids = [hit["_id"] for hit in found["hits"]["hits"]]
        assert ids == ["wf-5", "wf-3", "wf-1"]
        assert es.count(index=index, query={"match": {"memo": "order"}})["count"] == 10
    finally:
        es.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)
        es.indices.delete_index_template(name=prefix)
