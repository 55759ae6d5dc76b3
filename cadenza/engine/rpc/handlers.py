"""One handler per gRPC method: an API record in, the ``Frontend`` call, an API record out.

Handlers only convert; every rule lives behind the frontend. A handler raises ``ValueError`` (or a
``SchemaError``) for a record it cannot turn into a call, which the server answers with
INVALID_ARGUMENT naming the problem.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cadenza.engine.errors import ServiceError, UnavailableError
from cadenza.schemas.api import convert as cv
from cadenza.schemas.codec import encode_events
from cadenza.schemas.service import (
    GetHistoryRequest,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskFailedRequest,
)

log = logging.getLogger("cadenza.rpc")

Record = dict[str, Any]
Handler = Callable[[Record], Awaitable[Record]]
EMPTY: Record = {}


class VisibilityUnavailableError(ServiceError):
    code = "UNIMPLEMENTED"


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    cluster_name: str = "active"
    num_history_shards: int = 4
    persistence: str = "sqlite"
    server_version: str = ""
    capabilities: list[str] = field(default_factory=list)


class Handlers:
    """The gRPC surface of one ``Frontend`` (anything shaped like ``WorkflowService``)."""

    def __init__(self, frontend: Any, cluster: ClusterInfo) -> None:
        self.fe = frontend
        self.cluster = cluster

    def table(self) -> dict[str, Handler]:
        return {name: getattr(self, name) for name in _METHOD_NAMES}

    # -- workflows -------------------------------------------------------------------------------

    async def StartWorkflowExecution(self, r: Record) -> Record:
        resp = await self.fe.start_workflow_execution(cv.start_request_from_record(r))
        eager = resp.eager_workflow_task
        return {
            "run_id": resp.run_id,
            "started": resp.started,
            "eager_workflow_task": cv.workflow_task_to_record(eager) if eager is not None else None,
        }

    async def StartWorkflowExecutionAndWait(self, r: Record) -> Record:
        wait_s = r.pop("wait_s")
        started, closed = await self.fe.start_workflow_execution_and_wait(
            cv.start_request_from_record(r), wait_s
        )
        return {
            "run_id": started.run_id,
            "started": started.started,
            "history": cv.history_to_bytes(closed) if closed else b"",
        }

    async def SignalWorkflowExecution(self, r: Record) -> Record:
        await self.fe.signal_workflow_execution(
            r["namespace"],
            cv.execution_from_record(r["execution"]),
            r["signal_name"],
            r["input"],
            identity=r["identity"],
            request_id=r["request_id"],
            header=r["header"],
        )
        return EMPTY

    async def QueryWorkflow(self, r: Record) -> Record:
        result = await self.fe.query_workflow(
            r["namespace"],
            cv.execution_from_record(r["execution"]),
            r["query_type"],
            r["query_args"],
            header=r["header"],
        )
        return {"result": result}

    async def UpdateWorkflowExecution(self, r: Record) -> Record:
        resp = await self.fe.update_workflow_execution(cv.update_request_from_record(r))
        return cv.update_response_to_record(resp)

    async def UpdateWithStartWorkflowExecution(self, r: Record) -> Record:
        start = cv.start_request_from_record({k[6:]: v for k, v in r.items() if k.startswith("start_")})
        started, resp = await self.fe.update_with_start_workflow_execution(
            start, cv.update_request_from_record(r)
        )
        return {"run_id": started.run_id, "started": started.started, **cv.update_response_to_record(resp)}

    async def RequestCancelWorkflowExecution(self, r: Record) -> Record:
        await self.fe.request_cancel_workflow_execution(
            r["namespace"],
            cv.execution_from_record(r["execution"]),
            identity=r["identity"],
            request_id=r["request_id"],
        )
        return EMPTY

    async def TerminateWorkflowExecution(self, r: Record) -> Record:
        await self.fe.terminate_workflow_execution(
            r["namespace"],
            cv.execution_from_record(r["execution"]),
            reason=r["reason"],
            details=r["details"],
            identity=r["identity"],
        )
        return EMPTY

    async def DescribeWorkflowExecution(self, r: Record) -> Record:
        resp = await self.fe.describe_workflow_execution(
            r["namespace"], cv.execution_from_record(r["execution"])
        )
        return cv.describe_to_record(resp)

    async def GetWorkflowExecutionHistory(self, r: Record) -> Record:
        resp = await self.fe.get_workflow_execution_history(
            GetHistoryRequest(
                r["namespace"],
                cv.execution_from_record(r["execution"]),
                next_page_token=r["next_page_token"],
                maximum_page_size=r["maximum_page_size"],
                wait_new_event=r["wait_new_event"],
                close_event_only=r["close_event_only"],
                timeout_s=r["timeout_s"],
                branch_id=r["branch_id"],
            )
        )
        return {
            "history": cv.history_to_bytes(resp.events) if resp.events else b"",
            "next_page_token": resp.next_page_token,
            "run_id": resp.run_id,
        }

    # -- workflow tasks ----------------------------------------------------------------------------

    async def PollWorkflowTaskQueue(self, r: Record) -> Record:
        task = await self.fe.poll_workflow_task_queue(
            r["namespace"], r["task_queue"], identity=r["identity"], timeout_s=r["timeout_s"]
        )
        return {"task": cv.workflow_task_to_record(task) if task is not None else None}

    async def RespondWorkflowTaskCompleted(self, r: Record) -> Record:
        await self.fe.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                r["task_token"], cv.commands_from_records(r["commands"]), r["identity"], r["namespace"]
            )
        )
        return EMPTY

    async def RespondWorkflowTaskCompletedAndPoll(self, r: Record) -> Record:
        """Completes like ``RespondWorkflowTaskCompleted`` (a refusal fails the call the same way),
        then long-polls ``task_queue`` for the worker's next workflow task."""
        await self.RespondWorkflowTaskCompleted(r)
        try:
            return await self.PollWorkflowTaskQueue(r)
        except UnavailableError:
            return {"task": None}  # the server is stopping: the worker's next poll goes elsewhere
        except Exception:
            # The completion is done and must not look failed to the worker (it would drop the run
            # from its cache); its next plain poll meets the problem again and reports it.
            log.warning("polling after a workflow task completion failed", exc_info=True)
            return {"task": None}

    async def RespondWorkflowTaskCompletedEager(self, r: Record) -> Record:
        """Completes like ``RespondWorkflowTaskCompleted``, returns the activity tasks started for
        the worker (``eager_activity_ids``) and, if ``task_queue`` is set, the worker's next
        workflow task: long-polled for when no activity was started, taken only if queued when
        one was."""
        started = await self.fe.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                r["task_token"],
                cv.commands_from_records(r["commands"]),
                r["identity"],
                r["namespace"],
                eager_activity_ids=r["eager_activity_ids"],
                sticky_task_queue=r.get("sticky_task_queue", ""),
                sticky_schedule_to_start_timeout_ms=r.get("sticky_schedule_to_start_timeout_ms", 0),
            )
        )
        activity_tasks = [cv.activity_task_to_record(t) for t in started]
        if not r["task_queue"]:
            return {"task": None, "activity_tasks": activity_tasks}
        # With activities to run, the worker must get them now: the next workflow task is taken
        # only if one is already queued (often so under load), never waited for.
        poll = {**r, "timeout_s": 0.0} if activity_tasks else r
        try:
            polled = await self.PollWorkflowTaskQueue(poll)
        except UnavailableError:
            polled = {"task": None}  # the server is stopping (as above)
        except Exception:
            log.warning("polling after a workflow task completion failed", exc_info=True)
            polled = {"task": None}
        return {"task": polled["task"], "activity_tasks": activity_tasks}

    async def RespondWorkflowTaskCompletedSticky(self, r: Record) -> Record:
        """``RespondWorkflowTaskCompletedEager`` with the worker's sticky queue (sticky execution)."""
        return await self.RespondWorkflowTaskCompletedEager(r)

    async def DescribeTaskQueue(self, r: Record) -> Record:
        resp = await self.fe.describe_task_queue(r["namespace"], r["task_queue"], r["task_queue_type"])
        return {
            "pollers": [
                {
                    "identity": p.identity,
                    "last_access_time": p.last_access_time,
                    "sticky_task_queue": p.sticky_task_queue,
                }
                for p in resp.pollers
            ],
            "backlog_count_hint": resp.backlog_count_hint,
        }

    async def ResetStickyTaskQueue(self, r: Record) -> Record:
        await self.fe.reset_sticky_task_queue(r["namespace"], cv.execution_from_record(r["execution"]))
        return EMPTY

    async def RespondWorkflowTaskFailed(self, r: Record) -> Record:
        await self.fe.respond_workflow_task_failed(
            RespondWorkflowTaskFailedRequest(
                r["task_token"], r["cause"], r["failure"], r["identity"], r["namespace"]
            )
        )
        return EMPTY

    async def RespondQueryTaskCompleted(self, r: Record) -> Record:
        await self.fe.respond_query_task_completed(
            r["namespace"], r["query_id"], result=r["result"], error_message=r["error_message"]
        )
        return EMPTY

    # -- activity tasks ------------------------------------------------------------------------------

    async def PollActivityTaskQueue(self, r: Record) -> Record:
        task = await self.fe.poll_activity_task_queue(
            r["namespace"], r["task_queue"], identity=r["identity"], timeout_s=r["timeout_s"]
        )
        return {"task": cv.activity_task_to_record(task) if task is not None else None}

    async def RecordActivityTaskHeartbeat(self, r: Record) -> Record:
        cancel = await self.fe.record_activity_task_heartbeat(
            r["task_token"], r["details"], identity=r["identity"]
        )
        return {"cancel_requested": bool(cancel)}

    async def RespondActivityTaskCompleted(self, r: Record) -> Record:
        await self.fe.respond_activity_task_completed(r["task_token"], r["result"], identity=r["identity"])
        return EMPTY

    async def RespondActivityTaskFailed(self, r: Record) -> Record:
        if r["failure"] is None:
            raise ValueError("failure is required")
        await self.fe.respond_activity_task_failed(r["task_token"], r["failure"], identity=r["identity"])
        return EMPTY

    async def RespondActivityTaskCanceled(self, r: Record) -> Record:
        await self.fe.respond_activity_task_canceled(r["task_token"], r["details"], identity=r["identity"])
        return EMPTY

    async def RecordActivityTaskHeartbeatById(self, r: Record) -> Record:
        cancel = await self.fe.record_activity_task_heartbeat_by_id(
            *_activity_by_id(r), r["details"], identity=r["identity"]
        )
        return {"cancel_requested": bool(cancel)}

    async def RespondActivityTaskCompletedById(self, r: Record) -> Record:
        await self.fe.respond_activity_task_completed_by_id(
            *_activity_by_id(r), r["result"], identity=r["identity"]
        )
        return EMPTY

    async def RespondActivityTaskFailedById(self, r: Record) -> Record:
        if r["failure"] is None:
            raise ValueError("failure is required")
        await self.fe.respond_activity_task_failed_by_id(
            *_activity_by_id(r), r["failure"], identity=r["identity"]
        )
        return EMPTY

    async def RespondActivityTaskCanceledById(self, r: Record) -> Record:
        await self.fe.respond_activity_task_canceled_by_id(
            *_activity_by_id(r), r["details"], identity=r["identity"]
        )
        return EMPTY

    # -- namespaces and cluster ----------------------------------------------------------------------

    async def RegisterNamespace(self, r: Record) -> Record:
        await self.fe.register_namespace(cv.namespace_from_record(r["namespace"]))
        return EMPTY

    async def DescribeNamespace(self, r: Record) -> Record:
        return {"namespace": cv.namespace_to_record(await self.fe.describe_namespace(r["name"]))}

    async def ListNamespaces(self, r: Record) -> Record:
        return {"namespaces": [cv.namespace_to_record(n) for n in await self.fe.list_namespaces()]}

    async def UpdateNamespace(self, r: Record) -> Record:
        await self.fe.update_namespace(cv.namespace_from_record(r["namespace"]))
        return EMPTY

    async def ListWorkflowExecutions(self, r: Record) -> Record:
        method = getattr(self.fe, "list_workflow_executions", None)
        if method is None:
            raise VisibilityUnavailableError("visibility is not available on this server")
        resp = await method(r["namespace"], r["query"], r["page_size"] or 100, r["next_page_token"])
        return cv.executions_page_to_record(resp)

    async def ScanWorkflowExecutions(self, r: Record) -> Record:
        resp = await self.fe.scan_workflow_executions(
            r["namespace"], r["query"], r["page_size"] or 100, r["next_page_token"]
        )
        return cv.executions_page_to_record(resp)

    async def GetArchivedWorkflowHistory(self, r: Record) -> Record:
        events = await self.fe.get_archived_workflow_history(r["namespace"], r["workflow_id"], r["run_id"])
        return {"history": encode_events(events)}

    async def ListArchivedWorkflowExecutions(self, r: Record) -> Record:
        resp = await self.fe.list_archived_workflow_executions(
            r["namespace"], r["query"], r["page_size"] or 100, r["next_page_token"]
        )
        return cv.executions_page_to_record(resp)

    async def CountWorkflowExecutions(self, r: Record) -> Record:
        resp = await self.fe.count_workflow_executions(
            r["namespace"], r["query"], group_by_status=r["group_by_status"]
        )
        return {"count": resp.count, "groups": dict(resp.groups)}

    async def ResetWorkflowExecution(self, r: Record) -> Record:
        run_id = await self.fe.reset_workflow_execution(
            r["namespace"],
            cv.execution_from_record(r["execution"]),
            reset_type=r["reset_type"],
            event_id=r["event_id"],
            reason=r["reason"],
            identity=r["identity"],
        )
        return {"run_id": run_id}

    async def GetSearchAttributes(self, r: Record) -> Record:
        return {"attributes": await self.fe.get_search_attributes()}

    async def AddSearchAttributes(self, r: Record) -> Record:
        await self.fe.add_search_attributes(dict(r["attributes"]))
        return EMPTY

    async def DescribeCluster(self, r: Record) -> Record:
        return {"document": json.dumps(await self.fe.describe_cluster())}

    async def ListClusterMembers(self, r: Record) -> Record:
        members = await self.fe.list_cluster_members(r["role"])
        return {"members": [dataclasses.asdict(m) for m in members]}

    async def ReplicationDLQ(self, r: Record) -> Record:
        result = await self.fe.replication_dlq_work(r["source_cluster"], r["action"])
        return {"document": json.dumps(result)}

    async def FailoverNamespace(self, r: Record) -> Record:
        resp = await self.fe.failover_namespace(
            r["name"], r["target_cluster"], graceful=r["graceful"], timeout_s=r["timeout_s"]
        )
        return {
            "namespace": cv.namespace_to_record(resp.namespace),
            "graceful": resp.graceful,
            "seconds": resp.seconds,
            "message": resp.message,
        }

    async def GetRawHistory(self, r: Record) -> Record:
        """For other clusters filling a gap in a run's replicated history (an admin call)."""
        batches = await self.fe.get_raw_history(
            r["namespace_id"],
            r["workflow_id"],
            r["run_id"],
            r["start_event_id"],
            r["end_event_id"],
            r["end_event_version"],
        )
        return {
            "batches": [
                {
                    "first_event_id": b.first_event_id,
                    "next_event_id": b.next_event_id,
                    "version_history": [x for item in b.version_history for x in item],
                    "events": b.events,
                }
                for b in batches
            ]
        }

    async def GetClusterInfo(self, r: Record) -> Record:
        c = self.cluster
        capabilities = list(c.capabilities)
        if hasattr(self.fe, "list_workflow_executions"):
            capabilities.append("visibility")
        return {
            "server_version": c.server_version,
            "cluster_name": c.cluster_name,
            "num_history_shards": c.num_history_shards,
            "persistence": c.persistence,
            "capabilities": capabilities,
        }


def _activity_by_id(r: Record) -> tuple[str, str, str, str]:
    return r["namespace"], r["workflow_id"], r["run_id"], r["activity_id"]


_METHOD_NAMES = tuple(n for n in vars(Handlers) if n[:1].isupper())
