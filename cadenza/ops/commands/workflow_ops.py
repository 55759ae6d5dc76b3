"""`cadenza workflow count|reset|reset-batch|update`: visibility counts, resets and updates."""

from __future__ import annotations

from typing import Any

import click

from cadenza.ops.commands import history_view as hv
from cadenza.ops.commands.common import (
    connect,
    connection_options,
    fail,
    parse_json_args,
    pop_settings,
    print_json,
    print_table,
    run,
)
from cadenza.ops.commands.workflow import _input, _rid, _wid, workflow

RESET_TYPES = ("FirstWorkflowTask", "LastWorkflowTask", "EventId")


@workflow.command("count")
@click.option("--query", "-q", default="", help="List filter, e.g. \"ExecutionStatus = 'Running'\"")
@click.option("--group-by-status", is_flag=True, help="Count each status separately")
@connection_options
@click.pass_context
def count(ctx: click.Context, query: str, group_by_status: bool, **conn: Any) -> None:
    """Count workflows matching a visibility query (needs a server with visibility)."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            resp = await client.service.count_workflow_executions(  # type: ignore[attr-defined]
                s.namespace, query, group_by_status=group_by_status
            )
        if s.output == "json":
            print_json({"count": resp.count, "groups": resp.groups})
        elif group_by_status:
            print_table(("STATUS", "COUNT"), sorted(resp.groups.items()))
        else:
            click.echo(str(resp.count))

    run(s, go())


def _reset_options(fn: Any) -> Any:
    fn = click.option("--reason", required=True, help="Why (recorded in the new run's history)")(fn)
    fn = click.option(
        "--event-id", type=int, default=0, help="With --type EventId: a WorkflowTaskCompleted id"
    )(fn)
    return click.option(
        "--type",
        "reset_type",
        type=click.Choice(RESET_TYPES),
        default="LastWorkflowTask",
        show_default=True,
        help="Where to start over",
    )(fn)


@workflow.command("reset")
@_wid()
@_rid
@_reset_options
@connection_options
@click.pass_context
def reset(
    ctx: click.Context,
    workflow_id: str,
    run_id: str | None,
    reset_type: str,
    event_id: int,
    reason: str,
    **conn: Any,
) -> None:
    """Start a workflow over from a past workflow task; later signals are delivered again."""
    s = pop_settings(ctx, conn)
    if reset_type == "EventId" and not event_id:
        fail("--type EventId needs --event-id (a WorkflowTaskCompleted event id; see `workflow show`)")

    async def go() -> None:
        async with connect(s) as client:
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            new_run = await handle.reset(reset_type=reset_type, event_id=event_id, reason=reason)
        if s.output == "json":
            print_json({"workflow_id": workflow_id, "new_run_id": new_run})
        else:
            click.echo(f"Workflow {workflow_id} reset; new run {new_run}.")

    run(s, go())


@workflow.command("reset-batch")
@click.option("--query", "-q", required=True, help="Visibility query selecting the workflows to reset")
@click.option(
    "--type", "reset_type", type=click.Choice(RESET_TYPES[:2]), default="LastWorkflowTask", show_default=True
)
@click.option("--reason", required=True)
@click.option("--dry-run", is_flag=True, help="List what would be reset")
@connection_options
@click.pass_context
def reset_batch(
    ctx: click.Context, query: str, reset_type: str, reason: str, dry_run: bool, **conn: Any
) -> None:
    """Reset every workflow a visibility query selects, showing progress."""
    s = pop_settings(ctx, conn)

    async def go() -> None:
        async with connect(s) as client:
            targets: list[str] = []
            token = None
            while True:
                page = await client.service.scan_workflow_executions(  # type: ignore[attr-defined]
                    s.namespace, query, 500, token
                )
                targets.extend(e.workflow_id for e in page.executions)
                token = page.next_page_token
                if not token:
                    break
            targets = sorted(set(targets))
            results: list[dict[str, str]] = []
            if dry_run:
                results = [{"workflow_id": w, "result": "would reset"} for w in targets]
            else:
                for n, wid in enumerate(targets, start=1):
                    try:
                        new_run = await client.get_workflow_handle(wid).reset(
                            reset_type=reset_type, reason=reason
                        )
                        results.append({"workflow_id": wid, "result": f"new run {new_run}"})
                    except Exception as e:  # one failure must not stop the batch
                        results.append({"workflow_id": wid, "result": f"failed: {e}"})
                    click.echo(f"[{n}/{len(targets)}] {wid}: {results[-1]['result']}", err=True)
        if s.output == "json":
            print_json(results)
        else:
            print_table(("WORKFLOW ID", "RESULT"), [(r["workflow_id"], r["result"]) for r in results])
        if any(r["result"].startswith("failed") for r in results):
            raise SystemExit(1)

    run(s, go())


@workflow.command("update")
@_wid()
@_rid
@click.option("--name", "-n", required=True, help="Update name")
@click.option("--update-id", default=None, help="Update id (default: a new one); the same id runs once")
@_input
@connection_options
@click.pass_context
def update(
    ctx: click.Context,
    workflow_id: str,
    run_id: str | None,
    name: str,
    update_id: str | None,
    inputs: tuple[str, ...],
    **conn: Any,
) -> None:
    """Send a workflow update and print its result (a rejected or failed update exits non-zero)."""
    s = pop_settings(ctx, conn)
    args = parse_json_args(inputs)

    async def go() -> None:
        from cadenza.client import WorkflowUpdateStage

        async with connect(s) as client:
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            upd = await handle.start_update(
                name, args=args, id=update_id, wait_for_stage=WorkflowUpdateStage.COMPLETED
            )
            result = await upd.result()
        if s.output == "json":
            print_json({"workflow_id": workflow_id, "update_id": upd.id, "name": name, "result": result})
        else:
            click.echo(f"Update {upd.id} result: {hv.to_json(result)}")

    run(s, go())
