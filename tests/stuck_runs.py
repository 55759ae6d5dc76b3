"""What the engine holds of a run that never completed, for the failure message of a fault test:
its workflow task (cached and stored state), the matching queues holding a task of it, its timers,
and the log lines about it."""

from __future__ import annotations

import logging
from typing import Any

from cadenza.engine.history.mutable_state import decode_state


async def server_view(env: Any, workflow_id: str) -> str:
    """``env``: a ``WorkflowEnvironment`` whose engine runs in this process."""
    host = env.host
    parts = []
    for shard in host.history.shards.values():
        for ctx in shard.cached_runs():
            if ctx.key[1] != workflow_id:
                continue
            ns, _, rid = ctx.key
            wt = ctx.state.workflow_task if ctx.state is not None else None
            parts.append(f"cached wt={wt} deferred={len(ctx.deferred)} held={ctx.held_task}")
            try:
                executions = shard.stores.executions
                row = await executions.get_workflow_execution(shard.shard_id, ns, workflow_id, rid)
                parts.append(f"stored wt={decode_state(row.data).workflow_task}")
            except Exception as e:
                parts.append(f"stored: {e}")
    for key, q in host.matching._queues.items():
        mine = [t for t in q.tasks if t.workflow_id == workflow_id]
        if q.backlog is not None:
            mine += [t for t in q.backlog.buffer if t.workflow_id == workflow_id]
        if mine:
            parts.append(f"queue {key}: {mine}")
    timers = [e[3] for e in host.queues._timers if e[3].workflow_id == workflow_id]
    parts.append(f"timers: {[(t.kind, t.args, t.task_id) for t in timers]}")
    return "; ".join(parts)


def log_of(records: list[logging.LogRecord], workflow_id: str, last: int = 25) -> list[str]:
    """The last log lines that name the run (in their text or their bound context)."""
    return [
        f"{r.relativeCreated / 1000:.3f} {r.name}: {r.getMessage()}"[:300]
        for r in records
        if workflow_id in r.getMessage() or getattr(r, "workflow_id", None) == workflow_id
    ][-last:]
