"""The forwarder a frontend uses when it is standby for a namespace (see ``engine/forwarding``).

It forwards to the namespace's active cluster as this cluster knows it: over gRPC to the
cluster's ``rpcAddress`` (with the ``cadenza-forwarded`` header), or to a frontend in this
process. Forwarding is on for every global namespace unless ``enabled`` says otherwise (the
``dcRedirectionPolicy`` of the config, or dynamic config per namespace). With authorization on, a
forwarded request carries the caller's own token (``cadenza.replication.credentials``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cadenza.engine import errors as server_errors
from cadenza.engine.forwarding import FORWARDED, FORWARDED_HEADER
from cadenza.engine.namespaces import NamespaceRegistry
from cadenza.replication.credentials import ClusterCredentials
from cadenza.schemas.service import NamespaceInfo
from cadenza.sdk import exceptions as sdk_errors


class ClusterForwarder:
    def __init__(
        self,
        namespaces: NamespaceRegistry,
        *,
        addresses: Mapping[str, str] | None = None,
        services: Mapping[str, Any] | None = None,
        enabled: Callable[[NamespaceInfo], bool] | None = None,
        rpc_timeout: float = 30.0,
        credentials: ClusterCredentials | None = None,
    ) -> None:
        self.namespaces = namespaces
        self.credentials = credentials
        """The token a forwarded request carries (the caller's; see ``credentials``)."""
        self.addresses = dict(addresses or {})
        self.services: dict[str, Any] = services if isinstance(services, dict) else dict(services or {})
        """Per cluster, an object with the frontend's methods (a ``Frontend`` in this process, or
        a ``GrpcService`` opened on first use)."""
        self.enabled = enabled or (lambda info: True)
        self.rpc_timeout = rpc_timeout
        self.forwarded = 0
        self._opened: list[Any] = []

    @property
    def current(self) -> str:
        return self.namespaces.cluster.current_cluster_name

    async def target(self, namespace: str) -> str | None:
        try:
            info = await self.namespaces.get(namespace)
        except server_errors.NamespaceNotFoundError:
            return None  # the local call says so
        if not info.is_global or info.active_cluster == self.current or not self.enabled(info):
            return None
        return info.active_cluster if self._reachable(info.active_cluster) else None

    def can_forward(self, namespace: str, cluster: str) -> bool:
        if cluster == self.current or not self._reachable(cluster):
            return False
        info = self.namespaces.cached_by_id_or_name(namespace)
        return info is None or self.enabled(info)

    def _reachable(self, cluster: str) -> bool:
        return cluster in self.services or bool(self.addresses.get(cluster))

    def _service(self, cluster: str) -> Any:
        svc = self.services.get(cluster)
        if svc is None:
            from cadenza.sdk._grpc import GrpcService

            svc = GrpcService(
                [self.addresses[cluster]],
                rpc_timeout=self.rpc_timeout,
                metadata=((FORWARDED_HEADER, "true"),),
                # The active cluster's overload refusal goes back at once, hint and all: the
                # client that sent the request waits it out, not this frontend's handler.
                max_overload_wait=0,
                api_key=None if self.credentials is None else self.credentials.for_forwarding(cluster),
            )
            self.services[cluster] = svc
            self._opened.append(svc)
        return svc

    async def call(self, cluster: str, method: str, *args: Any, **kwargs: Any) -> Any:
        svc = self._service(cluster)
        self.forwarded += 1
        token = FORWARDED.set(True)  # an in-process target must not forward it again
        try:
            return await getattr(svc, method)(*args, **kwargs)
        except sdk_errors.CadenzaError as e:
            raise as_service_error(e, cluster) from None
        finally:
            FORWARDED.reset(token)

    async def close(self) -> None:
        for svc in self._opened:
            await svc.close()
        self._opened.clear()


def as_service_error(e: sdk_errors.CadenzaError, cluster: str) -> server_errors.ServiceError:
    """The active cluster's answer, as this frontend's own error (the code it travels with is the
    same, so the caller cannot tell a forwarded refusal from a local one)."""
    if isinstance(e, sdk_errors.WorkflowAlreadyStartedError):
        return server_errors.WorkflowAlreadyStartedError(str(e), workflow_id=e.workflow_id, run_id=e.run_id)
    if isinstance(e, sdk_errors.WorkflowNotFoundError):
        return server_errors.WorkflowNotFoundError(str(e), workflow_id=e.workflow_id, run_id=e.run_id or "")
    if isinstance(e, sdk_errors.NamespaceNotFoundError):
        return server_errors.NamespaceNotFoundError(str(e), namespace=e.namespace)
    if isinstance(e, sdk_errors.QueryFailedError):
        return server_errors.QueryFailedError(e.message)
    if isinstance(e, sdk_errors.RPCError):
        d = e.details
        if {"namespace", "current_cluster", "active_cluster"} <= set(d):
            err: server_errors.ServiceError = server_errors.NamespaceNotActiveError(
                str(d["namespace"]), str(d["current_cluster"]), str(d["active_cluster"])
            )
            err.message = e.message
            return err
        err = server_errors.ServiceError(e.message, **e.details)
        # The target went away mid-call (killed, restarting): to the caller that is this
        # frontend being unavailable, which clients retry, rather than a cancellation of theirs.
        err.code = "UNAVAILABLE" if e.status in ("CANCELLED", "UNKNOWN") else e.status
        return err
    err = server_errors.ServiceError(f"forwarding to cluster {cluster!r} failed: {e}")
    err.code = "UNAVAILABLE"
    return err
