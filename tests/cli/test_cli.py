"""Every `cadenza` command through click's CliRunner, against a real dev server subprocess."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from rpc.devserver import DevServer

from cadenza.ops.cli import _register, cli
from cadenza.schemas.events import EventType
from cadenza.sdk.history import WorkflowHistory

_register()
QUEUE = "faults"


def invoke(server: DevServer, *args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(
        cli, list(args), env={"CADENZA_ADDRESS": server.address}, catch_exceptions=False
    )
    if ok:
        assert result.exit_code == 0, (result.output, result.stderr)
    else:
        assert result.exit_code != 0, result.output
    return result


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _all_commands(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


@pytest.mark.parametrize("path", _all_commands(cli), ids=lambda p: " ".join(p) or "cadenza")
def test_every_command_answers_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_namespace_register_describe_list_update(server: DevServer) -> None:
    name = f"ns-{uuid.uuid4().hex[:6]}"
    assert "registered" in invoke(server, "namespace", "register", name, "--desc", "first").stdout
    # tctl's spelling: `n re --ns NAME --gd false --cl active standby`
    other = f"{name}-tctl"
    refused = invoke(server, "n", "re", "--ns", other, "--gd", "false", "--cl", "active", "standby", ok=False)
    assert "a local namespace lives in this cluster ('active') only" in refused.stderr
    registered = as_json(
        invoke(
            server,
            "n",
            "re",
            "--ns",
            other,
            "--gd",
            "false",
            "--cl",
            "active",
            "--ac",
            "active",
            "-o",
            "json",
        )
    )
    assert registered["name"] == other and registered["clusters"] == ["active"]
    described = as_json(invoke(server, "namespace", "describe", name, "-o", "json"))
    assert described["description"] == "first" and described["retention_days"] == 3
    assert "first" in invoke(server, "--ns", name, "n", "desc").stdout
    names = [n["name"] for n in as_json(invoke(server, "namespace", "list", "-o", "json"))]
    assert {"default", name, other} <= set(names)
    assert name in invoke(server, "n", "list").stdout
    updated = as_json(
        invoke(
            server,
            "namespace",
            "update",
            "--ns",
            name,
            "--desc",
            "second",
            "--rd",
            "7",
            "--data",
            "team=video",
            "-o",
            "json",
        )
    )
    assert (updated["description"], updated["retention_days"], updated["data"]) == (
        "second",
        7,
        {"team": "video"},
    )
    assert "updated" in invoke(server, "n", "up", "--ns", name, "--oe", "a@b.c").stdout


def test_namespace_errors_go_to_stderr_with_a_non_zero_exit(server: DevServer) -> None:
    result = invoke(server, "namespace", "describe", "no-such-namespace", ok=False)
    assert "no-such-namespace" in result.stderr and result.stdout == ""
    invoke(server, "namespace", "register", "dup-ns")
    assert "already exists" in invoke(server, "namespace", "register", "dup-ns", ok=False).stderr


def test_workflow_start_describe_signal_query_show_observe(server: DevServer, tmp_path: Path) -> None:
    wid = f"wait-{uuid.uuid4().hex[:6]}"
    started = as_json(
        invoke(
            server,
            "workflow",
            "start",
            "-t",
            QUEUE,
            "--wt",
            "Waiter",
            "-w",
            wid,
            "-i",
            '"clip"',
            "-o",
            "json",
        )
    )
    assert started["workflow_id"] == wid and started["run_id"]
    assert "Workflow Id: " in invoke(server, "wf", "start", "-t", QUEUE, "--wt", "Waiter", "-i", '"x"').stdout
    assert (
        as_json(invoke(server, "wf", "query", "-w", wid, "--qt", "status", "-o", "json"))["result"]
        == "waiting"
    )
    assert "waiting" in invoke(server, "wf", "query", "-w", wid, "--type", "status").stdout
    desc = as_json(invoke(server, "wf", "describe", "-w", wid, "-o", "json"))
    assert desc["status"] == "RUNNING" and desc["workflow_type"] == "Waiter"
    assert "RUNNING" in invoke(server, "workflow", "describe", "--wid", wid).stdout
    assert (
        as_json(invoke(server, "wf", "signal", "-w", wid, "-n", "release", "-i", '"ann"', "-o", "json"))[
            "result"
        ]
        == "signaled"
    )
    observed = invoke(server, "wf", "observe", "-w", wid, "-o", "json").stdout.splitlines()
    assert json.loads(observed[-1])["event_type"] == "WorkflowExecutionCompleted"
    assert "WorkflowExecutionCompleted" in invoke(server, "wf", "observe", "-w", wid).stdout
    history = as_json(invoke(server, "wf", "show", "-w", wid, "-o", "json"))
    assert history["events"][-1]["event_type"] == "WorkflowExecutionCompleted"
    assert "WorkflowExecutionSignaled" in invoke(server, "wf", "show", "-w", wid).stdout
    for flag in ("--output", "--of"):
        path = tmp_path / f"history{flag}.json"
        invoke(server, "workflow", "show", "-w", wid, flag, str(path))
        exported = WorkflowHistory.from_file(path)
        assert exported.events[-1].event_type == EventType.WORKFLOW_EXECUTION_COMPLETED
        assert exported.events[-1].attributes["result"][0]["data"] == b'"clip released by ann"'


def test_workflow_run_prints_the_result(server: DevServer) -> None:
    out = as_json(
        invoke(
            server,
            "wf",
            "run",
            "-t",
            QUEUE,
            "--wt",
            "ThreeSteps",
            "-w",
            "run-1",
            "-i",
            '"run-1"',
            "-o",
            "json",
        )
    )
    assert out["status"] == "COMPLETED" and out["result"] == ["run-1:0", "run-1:1", "run-1:2"]
    assert (
        'Result: ["r2:0"'
        in invoke(
            server, "workflow", "run", "-t", QUEUE, "--wt", "ThreeSteps", "-w", "r2", "-i", '"r2"'
        ).stdout
    )


def test_cancel_and_terminate(server: DevServer) -> None:
    for command, status in (("cancel", "CANCELED"), ("terminate", "TERMINATED")):
        wid = f"{command}-{uuid.uuid4().hex[:6]}"
        invoke(server, "wf", "start", "-t", QUEUE, "--wt", "Waiter", "-w", wid, "-i", '"x"')
        assert as_json(invoke(server, "wf", command, "-w", wid, "-o", "json"))["workflow_id"] == wid
        result = invoke(server, "wf", "observe", "-w", wid, ok=False)
        assert status in result.stderr
        assert as_json(invoke(server, "wf", "describe", "-w", wid, "-o", "json"))["status"] == status


def test_workflow_list_finds_a_started_workflow(server: DevServer) -> None:
    wid = f"listed-{uuid.uuid4().hex[:6]}"
    invoke(server, "wf", "start", "-t", QUEUE, "--wt", "Waiter", "-w", wid, "-i", '"x"')
    rows: list[Any] = []
    for _ in range(500):  # visibility is indexed asynchronously, through the embedded bus
        rows = as_json(invoke(server, "wf", "list", "-q", f"WorkflowId = '{wid}'", "-o", "json"))
        if rows:
            break
        time.sleep(0.01)
    assert [(r["workflow_id"], r["workflow_type"], r["status"]) for r in rows] == [(wid, "Waiter", "Running")]
    assert wid in invoke(server, "wf", "list", "--query", "WorkflowType = 'Waiter'").stdout
    assert "WorkflowId" in invoke(server, "wf", "list", "-q", "WorkflowId = ", ok=False).stderr


def test_bad_input_is_a_usage_error(server: DevServer) -> None:
    result = invoke(server, "wf", "start", "-t", QUEUE, "--wt", "Waiter", "-i", "{not json", ok=False)
    assert "not JSON" in result.stderr
    assert "workflow" in invoke(server, "wf", "describe", "-w", "never-started", ok=False).stderr.lower()


def test_an_unreachable_server_is_reported() -> None:
    result = CliRunner().invoke(cli, ["--address", "127.0.0.1:1", "namespace", "list"])
    assert result.exit_code == 1
    assert "cannot reach the Cadenza server at 127.0.0.1:1" in result.stderr
