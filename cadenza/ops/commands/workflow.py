"""`cadenza workflow ...` (short: `cadenza wf ...`): start, run, show, describe, list, signal, query,
cancel, terminate and observe workflows, with tctl's flag names (``-w/--wid``, ``-r/--rid``,
``-t/--tq``, ``--wt``, ``-i``) next to the long ones.

Inputs are JSON values (``-i '"world"' -i 3``); results and payloads are shown decoded.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import click

from cadenza.ops.commands import history_view as hv
from cadenza.ops.commands.common import (
    AliasedGroup,
    connect,
    connection_options,
    connection_options_without_output,
    fail,
    fmt_time,
    parse_json_args,
    pop_settings,
    print_fields,
    print_json,
    print_table,
    run,
)
from cadenza.sdk.common import WorkflowIDReusePolicy
from cadenza.sdk.exceptions import RPCError, WorkflowFailureError


@click.group("workflow", cls=AliasedGroup)
def workflow() -> None:
    """Start and operate workflows (alias: wf)."""


workflow_group: AliasedGroup = workflow  # type: ignore[assignment]


def _wid(required: bool = True) -> Any:
    return click.option("--workflow-id", "--wid", "-w", "workflow_id", required=required, help="Workflow id")


_rid = click.option(
    "--run-id", "--rid", "-r", "run_id", default=None, help="Run id (default: the latest run)"
)
_input = click.option("--input", "-i", "inputs", multiple=True, help="A JSON argument; repeat for more")


def _start_options(fn: Any) -> Any:
    for opt in reversed(
        [
            click.option("--task-queue", "--tq", "-t", "task_queue", required=True, help="Task queue"),
            click.option(
                "--type", "--workflow-type", "--wt", "workflow_type", required=True, help="Workflow type"
            ),
            _wid(required=False),
            _input,
            click.option("--execution-timeout", "--et", type=float, default=None, help="Seconds, all runs"),
            click.option("--run-timeout", type=float, default=None, help="Seconds, one run"),
            click.option(
                "--task-timeout", "--wtt", type=float, default=None, help="Seconds, one workflow task"
            ),
            click.option(
                "--id-reuse-policy",
                type=click.Choice([p.value for p in WorkflowIDReusePolicy]),
                default=WorkflowIDReusePolicy.ALLOW_DUPLICATE.value,
                show_default=True,
            ),
            click.option("--cron", default="", help="Cron schedule"),
            click.option("--memo", multiple=True, help="KEY=JSON memo entry, repeatable"),
        ]
    ):
        fn = opt(fn)
    return fn


def _seconds(v: float | None) -> timedelta | None:
    return timedelta(seconds=v) if v is not None else None


def _memo(pairs: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=JSON, got {pair!r}", param_hint="--memo")
        out[key] = parse_json_args([value], "--memo")[0]
    return out


async def _start(client: Any, o: dict[str, Any]) -> Any:
    return await client.start_workflow(
        o["workflow_type"],
        *parse_json_args(o["inputs"]),
        id=o["workflow_id"] or str(uuid.uuid4()),
        task_queue=o["task_queue"],
        execution_timeout=_seconds(o["execution_timeout"]),
        run_timeout=_seconds(o["run_timeout"]),
        task_timeout=_seconds(o["task_timeout"]),
        id_reuse_policy=WorkflowIDReusePolicy(o["id_reuse_policy"]),
        cron_schedule=o["cron"],
        memo=_memo(o["memo"]),
    )


@workflow.command("start")
@_start_options
@connection_options
@click.pass_context
def start(ctx: click.Context, **opts: Any) -> None:
    """Start a workflow and print its ids."""
    s = pop_settings(ctx, opts)

    async def go() -> None:
        async with connect(s) as client:
            handle = await _start(client, opts)
        if s.output == "json":
            print_json({"workflow_id": handle.id, "run_id": handle.first_run_id})
        else:
            click.echo(f"Started workflow. Workflow Id: {handle.id}, run Id: {handle.first_run_id}")

    run(s, go())


@workflow.command("run")
@_start_options
@connection_options
@click.pass_context
def run_(ctx: click.Context, **opts: Any) -> None:
    """Start a workflow, wait for it to close and print its result (exit 1 if it did not complete)."""
    s = pop_settings(ctx, opts)

    async def go() -> None:
        async with connect(s) as client:
            handle = await _start(client, opts)
            if s.output != "json":
                click.echo(f"Running workflow. Workflow Id: {handle.id}, run Id: {handle.first_run_id}")
            try:
                result = await handle.result()
            except WorkflowFailureError as e:
                if s.output == "json":
                    print_json(
                        {
                            "workflow_id": handle.id,
                            "run_id": handle.first_run_id,
                            "status": "FAILED",
                            "failure": str(e.cause),
                        }
                    )
                fail(f"workflow {handle.id} did not complete: {e.cause}")
        if s.output == "json":
            print_json(
                {
                    "workflow_id": handle.id,
                    "run_id": handle.first_run_id,
                    "status": "COMPLETED",
                    "result": result,
                }
            )
        else:
            click.echo(f"Result: {hv.to_json(result)}")

    run(s, go())


class _OutputOrFile(click.ParamType):
    name = "table|json|FILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(value)


@workflow.command("show")
@_wid()
@_rid
@click.option(
    "-o",
    "--output",
    "output",
    type=_OutputOrFile(),
    default=None,
    help="table or json to print the history; any other value is a file to export it to as JSON",
)
@click.option(
    "--output-filename",
    "--of",
    "output_filename",
    default=None,
    help="Export the history as JSON to this file (replayable with the Replayer)",
)
@click.option(
    "--branch",
    "branch_id",
    default="",
    help="Show this branch of the run's history (`wf describe` lists them; a conflict between "
    "clusters leaves the replaced history there)",
)
@click.option(
    "--archived",
    is_flag=True,
    default=False,
    help="Read the run from the namespace's history archive (after retention deleted it; needs -r)",
)
@connection_options_without_output
@click.pass_context
def show(
    ctx: click.Context,
    workflow_id: str,
    run_id: str | None,
    output: str | None,
    output_filename: str | None,
    branch_id: str,
    archived: bool,
    **conn: Any,
) -> None:
    """Print a run's history, or export it as JSON."""
    if archived and not run_id:
        raise click.BadParameter("an archived run is named by its run id", param_hint="--run-id")
    if output not in (None, "table", "json"):
        output_filename, output = output, None
    conn["output"] = output
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            if archived:
                from cadenza.sdk.history import WorkflowHistory

                events = await client.service.get_archived_workflow_history(
                    s.namespace, workflow_id, run_id or ""
                )
                history = WorkflowHistory(workflow_id, run_id or "", events)
            else:
                history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history(
                    branch_id=branch_id
                )
        if output_filename:
            history.write(output_filename)
            if s.output != "json":
                click.echo(f"Exported {len(history.events)} events of {workflow_id} to {output_filename}")
            return
        if s.output == "json":
            click.echo(history.to_json())
        else:
            print_table(("ID", "TIME", "TYPE", "DETAILS"), [hv.event_row(e) for e in history.events])

    run(s, go())


@workflow.command("describe")
@_wid()
@_rid
@connection_options
@click.pass_context
def describe(ctx: click.Context, workflow_id: str, run_id: str | None, **conn: Any) -> None:
    """Show a run's status, times and pending activities."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            d = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
        if s.output == "json":
            print_json(hv.describe_dict(d))
            return
        print_fields(
            [
                ("WorkflowId", d.workflow_id),
                ("RunId", d.run_id),
                ("Type", d.workflow_type),
                ("TaskQueue", d.task_queue),
                ("Status", d.status),
                ("StartTime", fmt_time(d.start_time)),
                ("CloseTime", fmt_time(d.close_time)),
                ("HistoryLength", d.history_length),
                ("HistorySizeBytes", d.history_size_bytes),
                ("Attempt", d.attempt),
                ("PendingTimers", d.pending_timers),
                ("Memo", hv.to_json(hv.decode_map(getattr(d, "raw_memo", d.memo)))),
                ("VersionHistories", "; ".join(d.version_histories)),
            ]
        )
        if d.pending_activities:
            print_table(
                ("ACTIVITY ID", "TYPE", "STATE", "ATTEMPT", "SCHEDULED", "LAST HEARTBEAT"),
                [
                    (
                        a.activity_id,
                        a.activity_type,
                        a.state,
                        a.attempt,
                        fmt_time(a.scheduled_time),
                        fmt_time(a.last_heartbeat_time),
                    )
                    for a in d.pending_activities
                ],
                title="Pending activities",
            )

    run(s, go())


@workflow.command("list")
@click.option("--query", "-q", default="", help="List filter, e.g. \"WorkflowType = 'Transcode'\"")
@click.option("--page-size", "--ps", type=int, default=100, show_default=True)
@click.option("--limit", type=int, default=1000, show_default=True, help="Stop after this many")
@click.option(
    "--archived",
    is_flag=True,
    default=False,
    help="List the namespace's archived visibility records (runs retention deleted) instead",
)
@connection_options
@click.pass_context
def list_(ctx: click.Context, query: str, page_size: int, limit: int, archived: bool, **conn: Any) -> None:
    """List workflows (needs a server with visibility; --archived: with archival reads enabled)."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            name = "list_archived_workflow_executions" if archived else "list_workflow_executions"
            method = getattr(client.service, name, None)
            if method is None:
                fail("visibility is not available on this server")
            rows: list[Any] = []
            token = None
            try:
                while len(rows) < limit:
                    page = await method(s.namespace, query, min(page_size, limit - len(rows)), token)
                    rows.extend(page.executions)
                    token = page.next_page_token
                    if not token:
                        break
            except RPCError as e:
                # An older server has no List method; a server without a visibility store refuses it.
                if e.status == "UNIMPLEMENTED" or (
                    e.status == "FAILED_PRECONDITION" and "visibility" in e.message
                ):
                    fail(f"visibility is not available on this server ({e.message})")
                raise
        rows = [hv.execution_dict(r) for r in rows[:limit]]
        if s.output == "json":
            print_json(rows)
            return
        print_table(
            ("WORKFLOW ID", "RUN ID", "TYPE", "STATUS", "START TIME", "CLOSE TIME"),
            [
                (
                    r["workflow_id"],
                    r["run_id"],
                    r["workflow_type"],
                    r["status"],
                    fmt_time(r["start_time"]),
                    fmt_time(r["close_time"]),
                )
                for r in rows
            ],
        )

    run(s, go())


@workflow.command("signal")
@_wid()
@_rid
@click.option("--name", "-n", required=True, help="Signal name")
@_input
@connection_options
@click.pass_context
def signal(
    ctx: click.Context, workflow_id: str, run_id: str | None, name: str, inputs: tuple[str, ...], **conn: Any
) -> None:
    """Send a signal to a workflow."""
    s = pop_settings(ctx, conn)
    args = parse_json_args(inputs)

    async def go() -> None:
        async with connect(s) as client:
            await client.get_workflow_handle(workflow_id, run_id=run_id).signal(name, *args)
        _done(s.output, "signaled", workflow_id, run_id)

    run(s, go())


@workflow.command("query")
@_wid()
@_rid
@click.option("--type", "--query-type", "--qt", "query_type", required=True, help="Query name")
@_input
@connection_options
@click.pass_context
def query(
    ctx: click.Context,
    workflow_id: str,
    run_id: str | None,
    query_type: str,
    inputs: tuple[str, ...],
    **conn: Any,
) -> None:
    """Ask a workflow a query and print the answer."""
    s = pop_settings(ctx, conn)
    args = parse_json_args(inputs)

    async def go() -> None:
        async with connect(s) as client:
            result = await client.get_workflow_handle(workflow_id, run_id=run_id).query(query_type, *args)
        if s.output == "json":
            print_json({"query_type": query_type, "result": result})
        else:
            click.echo(f"Query result: {hv.to_json(result)}")

    run(s, go())


@workflow.command("cancel")
@_wid()
@_rid
@connection_options
@click.pass_context
def cancel(ctx: click.Context, workflow_id: str, run_id: str | None, **conn: Any) -> None:
    """Request cancellation: the workflow sees it and decides how to end."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            await client.get_workflow_handle(workflow_id, run_id=run_id).cancel()
        _done(s.output, "cancel requested", workflow_id, run_id)

    run(s, go())


@workflow.command("terminate")
@_wid()
@_rid
@click.option("--reason", default="terminated from the CLI", show_default=True)
@connection_options
@click.pass_context
def terminate(ctx: click.Context, workflow_id: str, run_id: str | None, reason: str, **conn: Any) -> None:
    """Close a run at once, without running any more workflow code."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            await client.get_workflow_handle(workflow_id, run_id=run_id).terminate(reason)
        _done(s.output, "terminated", workflow_id, run_id)

    run(s, go())


@workflow.command("observe")
@_wid()
@_rid
@click.option("--timeout", type=float, default=None, help="Give up after this many seconds")
@connection_options
@click.pass_context
def observe(
    ctx: click.Context, workflow_id: str, run_id: str | None, timeout: float | None, **conn: Any
) -> None:
    """Follow a run's events as they happen until it closes (exit 1 unless it completed)."""
    s = pop_settings(ctx, conn)

    async def go() -> str:
        async with connect(s) as client:
            return await hv.observe(
                client, workflow_id, run_id, json_lines=s.output == "json", timeout=timeout
            )

    status = run(s, go())
    if status != "COMPLETED":
        fail(f"workflow {workflow_id} closed as {status}")


def _done(output: str, what: str, workflow_id: str, run_id: str | None) -> None:
    if output == "json":
        print_json({"workflow_id": workflow_id, "run_id": run_id or "", "result": what})
    else:
        click.echo(f"Workflow {workflow_id} {what}.")


workflow_group.aliases.update(
    {
        "desc": "describe",
        "l": "list",
        "ls": "list",
        "s": "start",
        "r": "run",
        "o": "observe",
        "stop": "terminate",
        "term": "terminate",
    }
)
