"""Reading another cluster's history over its frontend (``GetRawHistory``), to fill gaps."""

from __future__ import annotations

from collections.abc import Mapping

from cadenza.replication.applier import RawBatch
from cadenza.replication.credentials import ClusterCredentials


class GrpcRemoteHistory:
    """``RemoteHistory`` over gRPC, one connection per cluster, opened on first use."""

    def __init__(
        self,
        addresses: Mapping[str, str],
        *,
        rpc_timeout: float = 10.0,
        credentials: ClusterCredentials | None = None,
    ) -> None:
        self.addresses = dict(addresses)
        self.credentials = credentials
        """The cluster's own token for each remote (``GetRawHistory`` needs ``system:admin``)."""
        self.rpc_timeout = rpc_timeout
        self._services: dict[str, object] = {}

    def _service(self, cluster: str):  # type: ignore[no-untyped-def]
        from cadenza.sdk._grpc import GrpcService

        svc = self._services.get(cluster)
        if svc is None:
            address = self.addresses.get(cluster)
            if not address:
                raise LookupError(f"cluster {cluster!r} has no rpcAddress in clusterInformation")
            api_key = None if self.credentials is None else self.credentials.for_own_calls(cluster)
            svc = self._services[cluster] = GrpcService(
                [address], rpc_timeout=self.rpc_timeout, api_key=api_key
            )
        return svc

    async def raw_history(
        self,
        cluster: str,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        start_event_id: int,
        end_event_id: int,
        end_event_version: int = 0,
    ) -> list[RawBatch]:
        r = await self._service(cluster).call(
            "GetRawHistory",
            {
                "namespace_id": namespace_id,
                "workflow_id": workflow_id,
                "run_id": run_id,
                "start_event_id": start_event_id,
                "end_event_id": end_event_id,
                "end_event_version": end_event_version,
            },
        )
        out = []
        for b in r["batches"]:
            flat = b["version_history"]
            items = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
            out.append(RawBatch(b["first_event_id"], b["next_event_id"], items, b["events"]))
        return out

    async def close(self) -> None:
        for svc in self._services.values():
            await svc.close()  # type: ignore[attr-defined]
        self._services.clear()
