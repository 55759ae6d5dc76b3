"""`workflow count|reset|reset-batch` and `admin cluster ...` against a real dev server subprocess."""

from __future__ import annotations

import time
import uuid
from typing import Any

from rpc.devserver import DevServer

from cli.test_cli import QUEUE, as_json, invoke


def _wait_listed(server: DevServer, query: str, n: int) -> list[Any]:
    rows: list[Any] = []
    for _ in range(500):
        rows = as_json(invoke(server, "wf", "list", "-q", query, "-o", "json"))
        if len(rows) >= n:
            break
        time.sleep(0.01)
    return rows


def test_search_attributes_are_registered_and_counted(server: DevServer) -> None:
    invoke(server, "admin", "cluster", "add-search-attributes", "--name", "Team", "--type", "Keyword")
    attrs = as_json(invoke(server, "admin", "cluster", "get-search-attributes", "-o", "json"))
    assert attrs["Team"] == "Keyword" and attrs["WorkflowType"] == "Keyword"
    result = invoke(server, "admin", "cluster", "add-search-attributes", "--name", "X", ok=False)
    assert "--type" in result.stderr or "Missing option" in result.stderr

    tag = uuid.uuid4().hex[:6]
    for i in range(3):
        invoke(server, "wf", "start", "-t", QUEUE, "--wt", "Waiter", "-w", f"count-{tag}-{i}", "-i", '"x"')
    _wait_listed(server, f"WorkflowId STARTS_WITH 'count-{tag}'", 3)
    out = as_json(
        invoke(
            server,
            "wf",
            "count",
            "-q",
            f"WorkflowId STARTS_WITH 'count-{tag}'",
            "--group-by-status",
            "-o",
            "json",
        )
    )
    assert out == {"count": 3, "groups": {"Running": 3}}
    assert invoke(server, "wf", "count", "-q", f"WorkflowId STARTS_WITH 'count-{tag}'").stdout.strip() == "3"


def test_reset_and_reset_batch_start_runs_over(server: DevServer) -> None:
    wid = f"reset-{uuid.uuid4().hex[:6]}"
    invoke(server, "wf", "start", "-t", QUEUE, "--wt", "Waiter", "-w", wid, "-i", '"x"')
    first = as_json(invoke(server, "wf", "describe", "-w", wid, "-o", "json"))["run_id"]
    for _ in range(500):  # the first workflow task must have completed before there is a point to reset to
        if as_json(invoke(server, "wf", "describe", "-w", wid, "-o", "json"))["history_length"] >= 4:
            break
        time.sleep(0.01)
    out = as_json(invoke(server, "wf", "reset", "-w", wid, "--reason", "test", "-o", "json"))
    assert out["new_run_id"] and out["new_run_id"] != first
    assert (
        as_json(invoke(server, "wf", "describe", "-w", wid, "-r", first, "-o", "json"))["status"]
        == "TERMINATED"
    )
    bad = invoke(server, "wf", "reset", "-w", wid, "--type", "EventId", "--reason", "x", ok=False)
    assert "--event-id" in bad.stderr

    _wait_listed(server, f"WorkflowId = '{wid}' AND ExecutionStatus = 'Running'", 1)
    batch = as_json(
        invoke(
            server,
            "wf",
            "reset-batch",
            "-q",
            f"WorkflowId = '{wid}' AND ExecutionStatus = 'Running'",
            "--reason",
            "batch",
            "-o",
            "json",
        )
    )
    assert [r["workflow_id"] for r in batch] == [wid] and batch[0]["result"].startswith("new run")


def test_membership_lists_the_server_once_per_role_at_its_address(server: DevServer) -> None:
    members = as_json(invoke(server, "admin", "membership", "list", "-o", "json"))
    assert [m["role"] for m in members] == ["frontend", "history", "matching", "worker"]
    assert len({m["host_id"] for m in members}) == 1  # one process runs every role
    assert {m["rpc_address"] for m in members} == {server.address}
    assert all(m["expiry"] > m["last_heartbeat"] >= m["session_start"] > 0 for m in members)
    history = as_json(invoke(server, "admin", "membership", "list", "--role", "history", "-o", "json"))
    assert [m["role"] for m in history] == ["history"]
    table = invoke(server, "admin", "membership", "list").stdout
    assert "LAST HEARTBEAT" in table and server.address in table
