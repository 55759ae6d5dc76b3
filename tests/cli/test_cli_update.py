"""`cadenza wf update` against a dev server over gRPC, and `wf show` with the update's events."""

from __future__ import annotations

import json
import uuid

from rpc.devserver import DevServer

from cli.test_cli import QUEUE, as_json, invoke


def test_workflow_update_prints_the_result_and_show_renders_its_events(server: DevServer) -> None:
    wid = f"upd-{uuid.uuid4().hex[:6]}"
    invoke(server, "wf", "start", "-t", QUEUE, "--wt", "Waiter", "-w", wid, "-i", '"clip"')
    out = as_json(
        invoke(
            server,
            "wf",
            "update",
            "-w",
            wid,
            "--name",
            "greet",
            "-i",
            '"ann"',
            "--update-id",
            "u1",
            "-o",
            "json",
        )
    )
    assert out == {
        "workflow_id": wid,
        "update_id": "u1",
        "name": "greet",
        "result": "hello ann, still waiting",
    }
    table = invoke(server, "wf", "update", "-w", wid, "-n", "greet", "-i", '"bo"').stdout
    assert "result: " in table and json.dumps("hello bo, still waiting") in table
    # The same update id answers with the first outcome.
    again = as_json(
        invoke(
            server, "wf", "update", "-w", wid, "-n", "greet", "-i", '"zed"', "--update-id", "u1", "-o", "json"
        )
    )
    assert again["result"] == "hello ann, still waiting"
    # A rejected update exits non-zero with the validator's message, and writes nothing.
    before = as_json(invoke(server, "wf", "show", "-w", wid, "-o", "json"))["events"]
    refused = invoke(server, "wf", "update", "-w", wid, "-n", "greet", "-i", '""', ok=False)
    assert "who is required" in refused.stderr
    assert as_json(invoke(server, "wf", "show", "-w", wid, "-o", "json"))["events"] == before
    shown = invoke(server, "wf", "show", "-w", wid).stdout
    assert "WorkflowExecutionUpdateAccepted" in shown and "WorkflowExecutionUpdateCompleted" in shown
    invoke(server, "wf", "signal", "-w", wid, "-n", "release", "-i", '"ann"')
    closed = invoke(server, "wf", "update", "-w", wid, "-n", "greet", "-i", '"late"', ok=False)
    assert wid in closed.stderr and "closed" in closed.stderr
