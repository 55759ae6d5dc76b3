"""Failing a global namespace over to another cluster, forced or graceful.

*Forced* (``namespace update --active-cluster``, ``namespace failover`` without ``--graceful``):
the namespace's record moves to the target's next failover version here and replicates; the
target takes over the runs it has. Events this cluster published and the target had not applied
yet still arrive there and get their tasks (``HistoryReplicator._tasks``); anything written here
after the target's first write loses a conflict there and is re-applied (signals, cancels,
terminations).

*Graceful* (``--graceful --timeout 60s``, as Cadence offers it), run on the active cluster:

1. writes to the namespace here stop being accepted: they wait (``NamespaceRegistry.wait_writable``);
2. everything this cluster wrote is published (its replication queue is empty), and the target
   has applied it: its applier's committed offsets on this cluster's topic reach the topic's end;
3. the switch is made and replicates; the waiting writes are refused as not active here, which the
   frontend forwards to the new active cluster, so no request is refused.

If step 2 does not finish within the timeout, the failover falls back to forced, and says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cadenza.engine.errors import FailedPreconditionError, InvalidArgumentError

if TYPE_CHECKING:
    from cadenza.engine.host import Host
    from cadenza.schemas.service import NamespaceInfo

log = logging.getLogger("cadenza.replication")


@dataclass(frozen=True, slots=True)
class FailoverResult:
    namespace: NamespaceInfo
    graceful: bool
    """True when the graceful handover completed; False for a forced failover (asked for, or the
    graceful one timed out)."""
    seconds: float
    message: str


async def fail_over(
    host: Host, name: str, target: str, *, graceful: bool, timeout_s: float = 60.0
) -> FailoverResult:
    registry = host.namespaces
    info = await registry.get(name)
    here = registry.cluster.current_cluster_name
    if not info.is_global:
        raise InvalidArgumentError(f"namespace {name!r} is local; it has no other cluster to fail over to")
    if target not in info.clusters:
        raise InvalidArgumentError(f"cluster {target!r} is not among {name!r}'s clusters {info.clusters}")
    started = time.monotonic()
    if target == info.active_cluster:
        return FailoverResult(info, graceful, 0.0, f"namespace {name!r} is already active in {target!r}")
    if not graceful:
        updated = await registry.update(replace(info, active_cluster=target))
        return FailoverResult(updated, False, time.monotonic() - started, f"failed over to {target!r}")
    if info.active_cluster != here:
        raise FailedPreconditionError(
            f"a graceful failover of {name!r} runs on its active cluster {info.active_cluster!r}, "
            f"not on {here!r}"
        )
    if host.replication is None:
        raise FailedPreconditionError(
            f"cluster {here!r} does not replicate; there is nothing to hand over to"
        )
    registry.begin_handover(info.id)
    deadline = time.monotonic() + timeout_s
    try:
        try:
            await asyncio.wait_for(_target_caught_up(host, target), timeout_s)
            handed_over = True
        except TimeoutError:
            handed_over = False
        updated = await registry.update(replace(info, active_cluster=target), graceful=handed_over)
        # Release the held writes only once the target knows it is active, or they would be
        # forwarded to a cluster that still refuses them.
        try:
            await asyncio.wait_for(_target_caught_up(host, target), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            handed_over = False
    finally:
        registry.end_handover(info.id)
    seconds = time.monotonic() - started
    if handed_over:
        message = f"graceful failover to {target!r} in {seconds:.2f} s"
    else:
        message = (
            f"cluster {target!r} had not applied everything within {timeout_s:g} s: fell back to a forced "
            "failover (what it had not applied arrives later; conflicting writes are resolved)"
        )
        log.warning("namespace %s: %s", name, message)
    return FailoverResult(updated, handed_over, seconds, message)


async def _target_caught_up(host: Host, target: str) -> None:
    """Returns once the target cluster applied everything this cluster has written so far."""
    replication = host.replication
    assert replication is not None
    while host.queues.replication_backlog():
        await asyncio.sleep(0.01)
    bus, topic = replication.config.bus, replication.own.topic
    marks = await bus.watermarks(topic)
    group = f"cadenza-replication-{target}"
    while True:
        committed = await bus.committed(group, topic)
        if all(
            high <= low or (p in committed and committed[p].offset >= high)
            for p, (low, high) in marks.items()
        ):
            return
        await asyncio.sleep(0.02)
