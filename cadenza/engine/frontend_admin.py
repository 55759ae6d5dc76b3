"""The frontend's namespace and cluster operations: namespaces, failover, the cluster's state, and
the raw history other clusters read to fill replication gaps.

A mixin of ``Frontend`` (which owns ``namespaces``, ``history``, ``failover`` and
``replication_status``), kept apart so the workflow API in ``frontend.py`` stays one screenful per
operation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cadenza.engine.errors import FailedPreconditionError, InvalidArgumentError
from cadenza.engine.persistence.protocols import ROLES, ClusterMember
from cadenza.schemas.service import FailoverResponse, NamespaceInfo

if TYPE_CHECKING:
    from cadenza.engine.history.engine import HistoryEngine
    from cadenza.engine.namespaces import NamespaceRegistry


class ClusterOperations:
    namespaces: NamespaceRegistry
    history: HistoryEngine
    failover: Any
    replication_status: Any
    replication_dlq: Any

    async def get_raw_history(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        start_event_id: int,
        end_event_id: int,
        end_event_version: int = 0,
    ) -> list[Any]:
        """A run's stored batches, as another cluster asks for them to fill a replication gap: of the
        branch holding event ``end_event_id - 1`` with ``end_event_version`` (0: the current one)."""
        from cadenza.replication.service import read_raw_history

        return await read_raw_history(
            self.history, namespace_id, workflow_id, run_id, start_event_id, end_event_id, end_event_version
        )

    async def replication_dlq_work(self, source_cluster: str, action: str) -> dict[str, int]:
        """Merges (applies now) or purges what this cluster dead-lettered from ``source_cluster``."""
        if self.replication_dlq is None:
            raise FailedPreconditionError("this cluster does not replicate: it has no replication DLQ")
        if not source_cluster:
            raise InvalidArgumentError("source_cluster is required")
        try:
            result: dict[str, int] = await self.replication_dlq(source_cluster, action)
        except ValueError as e:
            raise InvalidArgumentError(str(e)) from None
        return result

    async def describe_cluster(self) -> dict[str, Any]:
        """The clusters, which one this is, every global namespace's active cluster and failover
        version, and this cluster's replication: lag per source, DLQ depth, applier state."""
        c = self.namespaces.cluster
        namespaces = [
            {
                "name": n.name,
                "active_cluster": n.active_cluster,
                "failover_version": n.failover_version,
                "clusters": list(n.clusters),
                "in_handover": self.namespaces.in_handover(n.id),
            }
            for n in await self.namespaces.list()
            if n.is_global
        ]
        return {
            "current_cluster": c.current_cluster_name,
            "master_cluster": c.master_cluster_name or c.current_cluster_name,
            "failover_version_increment": c.failover_version_increment,
            "clusters": [
                {
                    "name": name,
                    "initial_failover_version": info.initial_failover_version,
                    "enabled": info.enabled,
                    "rpc_address": info.rpc_address,
                }
                for name, info in sorted(c.clusters.items())
            ],
            "namespaces": namespaces,
            "replication": await self.replication_status() if self.replication_status is not None else None,
        }

    async def list_cluster_members(self, role: str = "") -> list[ClusterMember]:
        """The live members of the cluster's membership (of ``role``, or every role), read from the
        store: what every process builds its rings from."""
        if role and role not in ROLES:
            raise InvalidArgumentError(f"role {role!r} is not one of {', '.join(ROLES)}")
        members: list[ClusterMember] = await self.history.stores.membership.list_members(
            now_us=self.history.clock.now_us(), role=role or None
        )
        return members

    async def failover_namespace(
        self, name: str, target_cluster: str, *, graceful: bool = False, timeout_s: float = 60.0
    ) -> FailoverResponse:
        """Makes ``target_cluster`` the namespace's active cluster (see ``replication.failover``)."""
        if self.failover is None:
            raise FailedPreconditionError("this cluster does not replicate: there is no other cluster")
        if timeout_s <= 0:
            raise InvalidArgumentError(f"timeout_s must be positive (got {timeout_s})")
        r = await self.failover(name, target_cluster, graceful=graceful, timeout_s=timeout_s)
        return FailoverResponse(r.namespace, r.graceful, r.seconds, r.message)

    async def register_namespace(self, info: NamespaceInfo) -> None:
        await self.namespaces.register(info)

    async def describe_namespace(self, name: str) -> NamespaceInfo:
        return await self.namespaces.get(name)

    async def list_namespaces(self) -> list[NamespaceInfo]:
        return await self.namespaces.list()

    async def update_namespace(self, info: NamespaceInfo) -> None:
        await self.namespaces.update(info)
