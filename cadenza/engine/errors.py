"""Errors the server returns to callers, each with the status code it travels as.

The codes are gRPC's, so the network frontend maps them one to one; in one process the SDK's local
transport turns them into ``cadenza.sdk.exceptions`` types the same way the network client does.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgumentError(ServiceError):
    """The request is malformed or breaks a limit; nothing was written."""

    code = "INVALID_ARGUMENT"


class NotFoundError(ServiceError):
    code = "NOT_FOUND"


class NamespaceNotFoundError(NotFoundError):
    pass


class WorkflowNotFoundError(NotFoundError):
    pass


class TaskNotFoundError(NotFoundError):
    """A task token no longer matches: the task timed out, was retried or already completed."""


class AlreadyExistsError(ServiceError):
    code = "ALREADY_EXISTS"


class WorkflowAlreadyStartedError(AlreadyExistsError):
    def __init__(self, message: str, *, workflow_id: str, run_id: str, start_request_id: str = "") -> None:
        super().__init__(message, workflow_id=workflow_id, run_id=run_id, start_request_id=start_request_id)
        self.workflow_id = workflow_id
        self.run_id = run_id


class FailedPreconditionError(ServiceError):
    code = "FAILED_PRECONDITION"


class WorkflowCompletedError(FailedPreconditionError):
    """The run is closed; signals, cancels and terminates no longer apply."""


class QueryRejectedError(FailedPreconditionError):
    pass


class NamespaceNotActiveError(FailedPreconditionError):
    """A write reached a cluster that is standby for the namespace (or for the run: its last write
    came from a newer failover version elsewhere). Nothing was written."""

    def __init__(self, namespace: str, current_cluster: str, active_cluster: str, *, why: str = "") -> None:
        super().__init__(
            f"namespace {namespace!r} is not active in cluster {current_cluster!r}; "
            f"its active cluster is {active_cluster!r}{why}",
            namespace=namespace,
            current_cluster=current_cluster,
            active_cluster=active_cluster,
        )
        self.namespace = namespace
        self.current_cluster = current_cluster
        self.active_cluster = active_cluster


class ResourceExhaustedError(ServiceError):
    code = "RESOURCE_EXHAUSTED"


class DeadlineExceededError(ServiceError):
    code = "DEADLINE_EXCEEDED"


class UnavailableError(ServiceError):
    code = "UNAVAILABLE"


class QueryFailedError(ServiceError):
    code = "QUERY_FAILED"
