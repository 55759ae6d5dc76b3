"""Found inputs sent over gRPC to the in-process server: each call is INVALID_ARGUMENT naming the
problem (before the fixes they escaped as UNKNOWN), and the server keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from cadenza.schemas import api
from tests.fuzz import seeds
from tests.rpc.test_wire import raw, run_against_server, status_of, still_serving

REGRESSIONS = Path(__file__).with_name("regressions")


def _request(method: str, **fields: Any) -> bytes:
    record = next(seeds.request_records(method))  # every field at its default
    if "namespace" in record:
        record["namespace"] = "default"
    record.update(fields)
    return api.encode(f"{method}Request", record)


def _found(name: str) -> bytes:
    return (REGRESSIONS / name).read_bytes()


CASES = [
    (
        "RespondWorkflowTaskCompleted",
        {"task_token": _found("task_tokens/workflow-token-infinite-event-id.bin")},
        "task_token is malformed",
    ),
    (
        "RespondActivityTaskCompleted",
        {"task_token": _found("task_tokens/workflow-token-deep-nesting.bin")},
        "task_token is malformed",
    ),
    (
        "ListWorkflowExecutions",
        {"query": _found("list_query/nested-parentheses.bin").decode(), "page_size": 10},
        "nested deeper than",
    ),
    (
        "ListWorkflowExecutions",
        {
            "query": "",
            "page_size": 10,
            "next_page_token": _found("task_tokens/page-token-start-time-past-year-9999.bin"),
        },
        "invalid page token",
    ),
    (
        "CountWorkflowExecutions",
        {"query": _found("list_query/number-of-5000-digits.bin").decode()},
        "characters (at most",
    ),
]


@pytest.mark.parametrize(("method", "fields", "needle"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_found_input_is_invalid_argument_and_the_server_keeps_serving(
    method: str, fields: dict[str, Any], needle: str
) -> None:
    async def scenario(address: str, channel: grpc.aio.Channel) -> None:
        code, details = await status_of(raw(channel, method, _request(method, **fields)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert needle in details
        await still_serving(channel)

    run_against_server(scenario)
