"""Re-applying external input that a conflict would otherwise lose.

Two kinds of loser hold signals, cancel requests or terminations that a client was told were
accepted: a losing branch of a run (the clusters both wrote to it during a split brain; the branch
with the higher version won), and a run that is no longer the current run of its workflow id (a
zombie, or a run a newer one superseded; see ``current_run``). Only the cluster active for the
namespace re-applies, because it sees every branch and run anyway (its own writes, and every other
cluster's through their topics). Each re-applied event names its origin in its identity and in the
run's request ids, so nothing is applied twice, by this cluster or by one that becomes active later.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from cadenza.engine.history.mutation import Mutation, close_run
from cadenza.replication.version_history import VersionHistory, VersionHistoryError, find_lca_item
from cadenza.schemas.codec import decode_events
from cadenza.schemas.events import EventType, HistoryEvent

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine
    from cadenza.engine.history.shard import ShardContext

log = logging.getLogger("cadenza.replication")

REAPPLIED_EVENT_TYPES = (
    EventType.WORKFLOW_EXECUTION_SIGNALED,
    EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED,
    EventType.WORKFLOW_EXECUTION_TERMINATED,
)


class Reapplier:
    def __init__(self, engine: HistoryEngine) -> None:
        self.engine = engine

    async def reapply_losing_branches(self, namespace_id: str, workflow_id: str, run_id: str) -> int:
        """Re-applies on the run's current branch every signal, cancel request and termination that
        a losing branch has after its common ancestor with the current one and that was not
        re-applied yet, by any cluster: each re-applied event names its origin (version and event
        id) in its identity, so a cluster that becomes active later does not apply it twice. Runs
        wherever the namespace is active: on conflicts, on a duplicate delivery, on a take-over."""
        try:
            _, ms, current = await self.engine.get_state_and_events(namespace_id, workflow_id, run_id)
        except Exception:
            return 0
        if not ms.branches or not ms.is_running:
            return 0
        done = {k for k in ms.signal_request_ids if k.startswith("reapply:")}
        done |= {k for e in current if (k := _reapplied_key(e)) is not None}
        cur_vh = VersionHistory.from_list(ms.version_history, ms.info.branch_id)
        shard = self.engine.shard(namespace_id, workflow_id)
        todo: dict[str, HistoryEvent] = {}
        for branch_id, items in ms.branches:
            vh = VersionHistory.from_list(items, branch_id)
            try:
                lca = find_lca_item(cur_vh, vh)
            except VersionHistoryError:
                continue
            for e in await read_events(shard, ms.info.tree_id, branch_id, vh.last_event_id() + 1):
                key = f"reapply:{e.version}:{e.event_id}"
                if e.event_id > lca.event_id and e.event_type in REAPPLIED_EVENT_TYPES and key not in done:
                    todo.setdefault(key, e)
        if not todo:
            return 0
        return await self.reapply_from_loser(namespace_id, workflow_id, run_id, list(todo.values()))

    async def reapply_from_other_run(
        self, namespace_id: str, workflow_id: str, from_run_id: str, events: list[HistoryEvent]
    ) -> int:
        """Re-applies on the workflow's current run the signals that ``from_run_id``, a run that is
        not current (a zombie, or one a newer run superseded), received: a client signalled the
        workflow, and the run that took the signal lost the workflow id. Each once, by origin."""
        signals = [e for e in events if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED]
        if not signals:
            return 0
        try:
            current = await self.engine.shard(namespace_id, workflow_id).current_run_id(
                namespace_id, workflow_id
            )
            _, ms, current_events = await self.engine.get_state_and_events(namespace_id, workflow_id, current)
        except Exception:
            return 0
        if current == from_run_id or not ms.is_running:
            return 0
        done = set(ms.signal_request_ids)
        done |= {k for e in current_events if (k := _reapplied_key(e)) is not None}
        todo = [e for e in signals if _origin_key(from_run_id, e) not in done]
        if not todo:
            return 0
        return await self.reapply_from_loser(namespace_id, workflow_id, current, todo, origin_run=from_run_id)

    async def reapply_from_loser(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        events: list[HistoryEvent],
        *,
        origin_run: str = "",
    ) -> int:
        """Writes the losing branch's signals, cancel requests and terminations on the run's
        current branch, each once; returns how many were applied now. ``origin_run``: the events
        come from another run of the workflow (see ``reapply_from_other_run``)."""
        applied = 0

        def rule(m: Mutation) -> None:
            nonlocal applied
            applied = 0
            ms = m.ms
            for e in events:
                key = _origin_key(origin_run, e)
                if key in ms.signal_request_ids or not ms.is_running:
                    continue
                ms.signal_request_ids.add(key)
                a = dict(e.attributes)
                origin = f"run {origin_run} " if origin_run else ""
                a["identity"] = (
                    f"{a.get('identity') or ''} {REAPPLIED_MARK}{origin}{e.version}:{e.event_id})".lstrip()
                )
                if e.event_type == EventType.WORKFLOW_EXECUTION_SIGNALED:
                    ms.add_or_buffer(e.event_type, m.now, a)
                elif e.event_type == EventType.WORKFLOW_EXECUTION_CANCEL_REQUESTED:
                    if ms.info.cancel_requested:
                        continue
                    ms.info.cancel_requested = True
                    ms.add_or_buffer(e.event_type, m.now, a)
                else:
                    close_run(m, EventType.WORKFLOW_EXECUTION_TERMINATED, a)
                applied += 1
            if applied:
                m.schedule_workflow_task()
            else:
                m.noop = True

        await self.engine.mutate(namespace_id, workflow_id, run_id, rule)
        if applied:
            log.info(
                "workflow %s run %s: re-applied %d events of %s",
                workflow_id,
                run_id,
                applied,
                f"run {origin_run}" if origin_run else "a losing branch",
            )
        return applied


REAPPLIED_MARK = "(re-applied from "
_REAPPLIED = re.compile(r"\(re-applied from (?:run (\S+) )?(\d+):(\d+)\)$")


def _reapplied_key(e: HistoryEvent) -> str | None:
    """``reapply:<version>:<event id>`` of the losing-branch event ``e`` re-applies, if it does."""
    if e.event_type not in REAPPLIED_EVENT_TYPES:
        return None
    match = _REAPPLIED.search(str(e.attributes.get("identity") or ""))
    if match is None:
        return None
    run, version, event_id = match.groups()
    return f"reapply:{run}:{version}:{event_id}" if run else f"reapply:{version}:{event_id}"


def _origin_key(origin_run: str, e: HistoryEvent) -> str:
    """The request id under which event ``e`` of ``origin_run`` (or of a losing branch of the same
    run, when empty) is re-applied: one per origin, so it is never applied twice."""
    if origin_run:
        return f"reapply:{origin_run}:{e.version}:{e.event_id}"
    return f"reapply:{e.version}:{e.event_id}"


async def read_events(
    shard: ShardContext, tree_id: str, branch_id: str, end_event_id: int
) -> list[HistoryEvent]:
    """Events ``1 .. end_event_id - 1`` of a branch."""
    out: list[HistoryEvent] = []
    token: bytes | None = None
    while end_event_id > 1:
        nodes, token = await shard.stores.history.read_history_branch(
            tree_id, branch_id, min_node_id=1, max_node_id=end_event_id, page_size=1000, token=token
        )
        for node in nodes:
            out.extend(e for e in decode_events(node.data) if e.event_id < end_event_id)
        if not token:
            break
    return out
