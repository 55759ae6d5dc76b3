"""The role every frontend API needs: one table, read by the authorizer, the docs and the tests.

A test walks ``cadenza.schemas.api.METHODS`` against this table, so an API added without a row here
fails it rather than being served unchecked. ``docs/authorization.md`` prints the same table.

Scopes:

* ``namespace``: the role is needed in the namespace the request names (or its task token belongs
  to); a system role of that rank also does;
* ``system``: the role is needed in the system scope (``system:<role>``): namespaces themselves,
  search attributes, cluster state, replication;
* ``authenticated``: any verified caller (``GetClusterInfo``, which clients call when they
  connect, so a missing or bad token is reported there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from cadenza.engine.auth.claims import Role

Scope = Literal["namespace", "system", "authenticated"]
NamespaceField = Literal["namespace", "name", "start_namespace", "task_token"]


@dataclass(frozen=True, slots=True)
class Access:
    """What one API needs."""

    scope: Scope
    role: Role
    namespace_from: tuple[NamespaceField, ...] = ("namespace",)
    """Where the request names its namespace: a field, or the namespace id inside the
    ``task_token``. A call that answers a task is checked against the namespace the task belongs
    to; one that also polls (``...AndPoll``) against the namespace it polls as well."""


def _ns(role: Role, *where: NamespaceField) -> Access:
    return Access("namespace", role, where or ("namespace",))


def _system(role: Role) -> Access:
    return Access("system", role, ())


R, W, WK, ADMIN = Role.READ, Role.WRITE, Role.WORKER, Role.ADMIN

API_ACCESS: Mapping[str, Access] = MappingProxyType(
    {
        # -- workflows: reading
        "DescribeWorkflowExecution": _ns(R),
        "GetWorkflowExecutionHistory": _ns(R),
        "QueryWorkflow": _ns(R),
        "ListWorkflowExecutions": _ns(R),
        "ScanWorkflowExecutions": _ns(R),
        "CountWorkflowExecutions": _ns(R),
        "GetArchivedWorkflowHistory": _ns(R),
        "ListArchivedWorkflowExecutions": _ns(R),
        "DescribeTaskQueue": _ns(R),
        "DescribeNamespace": _ns(R, "name"),
        # -- workflows: changing
        "StartWorkflowExecution": _ns(W),
        "StartWorkflowExecutionAndWait": _ns(W),
        "SignalWorkflowExecution": _ns(W),
        "UpdateWorkflowExecution": _ns(W),
        "UpdateWithStartWorkflowExecution": _ns(W, "start_namespace"),
        "RequestCancelWorkflowExecution": _ns(W),
        "TerminateWorkflowExecution": _ns(W),
        "ResetWorkflowExecution": _ns(W),
        # -- workers: polling and answering tasks
        "PollWorkflowTaskQueue": _ns(WK),
        "RespondWorkflowTaskCompleted": _ns(WK, "task_token"),
        "RespondWorkflowTaskCompletedAndPoll": _ns(WK, "task_token", "namespace"),
        "RespondWorkflowTaskCompletedEager": _ns(WK, "task_token", "namespace"),
        "RespondWorkflowTaskCompletedSticky": _ns(WK, "task_token", "namespace"),
        "RespondWorkflowTaskFailed": _ns(WK, "task_token"),
        "RespondQueryTaskCompleted": _ns(WK),
        "ResetStickyTaskQueue": _ns(WK),
        "PollActivityTaskQueue": _ns(WK),
        "RecordActivityTaskHeartbeat": _ns(WK, "task_token"),
        "RespondActivityTaskCompleted": _ns(WK, "task_token"),
        "RespondActivityTaskFailed": _ns(WK, "task_token"),
        "RespondActivityTaskCanceled": _ns(WK, "task_token"),
        "RecordActivityTaskHeartbeatById": _ns(WK),
        "RespondActivityTaskCompletedById": _ns(WK),
        "RespondActivityTaskFailedById": _ns(WK),
        "RespondActivityTaskCanceledById": _ns(WK),
        # -- the cluster
        "GetClusterInfo": Access("authenticated", Role.NONE, ()),
        "ListNamespaces": _system(R),
        "GetSearchAttributes": _system(R),
        "DescribeCluster": _system(R),
        "ListClusterMembers": _system(R),
        "RegisterNamespace": _system(ADMIN),
        "UpdateNamespace": _system(ADMIN),
        "FailoverNamespace": _system(ADMIN),
        "AddSearchAttributes": _system(ADMIN),
        "ReplicationDLQ": _system(ADMIN),
        "GetRawHistory": _system(ADMIN),
    }
)
"""Every API of ``cadenza.api.v1.WorkflowService`` and what it needs."""
