"""The frontend API: the requests and responses clients and workers exchange with the server.

``WorkflowService`` is the boundary between the SDK and the server. In one process the SDK calls the
engine's implementation directly; over the network the same calls travel as Avro-encoded gRPC
messages. Field names follow the anchors' API (snake_case); payloads, failures and durations follow the
conventions of ``cadenza.schemas.events``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cadenza.schemas.events import Command, HistoryEvent

Payloads = list[dict[str, Any]]


@dataclass(slots=True)
class StartWorkflowRequest:
    namespace: str
    workflow_id: str
    workflow_type: str
    task_queue: str
    input: Payloads | None = None
    workflow_execution_timeout_ms: int = 0
    workflow_run_timeout_ms: int = 0
    workflow_task_timeout_ms: int = 0
    request_id: str = ""
    identity: str = ""
    workflow_id_reuse_policy: str = "ALLOW_DUPLICATE"
    retry_policy: dict[str, Any] | None = None
    cron_schedule: str = ""
    memo: dict[str, Any] | None = None
    search_attributes: dict[str, Any] | None = None
    header: dict[str, Any] | None = None
    signal_name: str = ""
    """With signal-with-start: the signal delivered to the running or newly started run."""
    signal_input: Payloads | None = None
    workflow_id_conflict_policy: str = ""
    """What to do when a run of this id is running (Temporal's WorkflowIdConflictPolicy): ``FAIL``
    (also what empty means), ``USE_EXISTING`` (answer with the running run) or
    ``TERMINATE_EXISTING`` (terminate it and start, in one write). ``workflow_id_reuse_policy``
    governs closed runs."""
    workflow_start_delay_ms: int = 0
    """Delay of the first workflow task (Temporal's WorkflowStartDelay), recorded as the started
    event's ``first_workflow_task_backoff_ms``; not with ``cron_schedule``."""
    request_eager_execution: bool = False
    """Eager workflow start (Temporal's ``request_eager_execution``): the caller has a worker for
    the task queue in its process; the first workflow task is started for it and returned with the
    start (``StartWorkflowResponse.eager_workflow_task``) instead of going through matching."""


@dataclass(slots=True)
class StartWorkflowResponse:
    run_id: str
    started: bool = True
    """False when an equal request (same request id) had already started this run."""
    eager_workflow_task: Any = None
    """With ``request_eager_execution``: the run's first workflow task, started for the caller
    (a ``PollWorkflowTaskResponse``); None when it could not be (it then goes through matching)."""


@dataclass(slots=True)
class WorkflowExecution:
    workflow_id: str
    run_id: str = ""


@dataclass(slots=True)
class PendingActivity:
    activity_id: str
    activity_type: str
    state: str
    attempt: int
    scheduled_time: int
    last_started_time: int
    last_heartbeat_time: int
    heartbeat_details: Payloads | None
    last_failure: dict[str, Any] | None


@dataclass(slots=True)
class DescribeWorkflowResponse:
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: str
    start_time: int
    close_time: int
    history_length: int
    history_size_bytes: int
    memo: dict[str, Any] = field(default_factory=dict)
    search_attributes: dict[str, Any] = field(default_factory=dict)
    pending_activities: list[PendingActivity] = field(default_factory=list)
    pending_timers: int = 0
    attempt: int = 1
    version_histories: list[str] = field(default_factory=list)
    """One line per branch of the run's history, current first: ``<branch id>: <last event
    id>@<version> ...``. More than one after a conflict between clusters was resolved."""
    execution_time: int = 0
    """When the run's first workflow task was (or will be) due: the start time plus any start
    delay or cron/retry backoff. 0 from a server that does not say; read it as ``start_time``."""
    parent_workflow_id: str = ""
    parent_run_id: str = ""
    """The parent of a child run; empty otherwise."""


@dataclass(slots=True)
class GetHistoryRequest:
    namespace: str
    execution: WorkflowExecution
    next_page_token: bytes | None = None
    maximum_page_size: int = 1000
    wait_new_event: bool = False
    """Long poll: return once there are events past the token (or the run closed)."""
    close_event_only: bool = False
    timeout_s: float = 60.0
    branch_id: str = ""
    """Read this branch of the run's history (a losing branch of a conflict between clusters)
    instead of the current one; no long poll."""


@dataclass(slots=True)
class GetHistoryResponse:
    events: list[HistoryEvent]
    next_page_token: bytes | None = None
    run_id: str = ""


@dataclass(slots=True)
class WorkflowTaskQuery:
    query_id: str
    query_type: str
    query_args: Payloads | None
    header: dict[str, Any] = field(default_factory=dict)
    """The querying client's header: the handler's ``HandleQueryInput.headers``."""


@dataclass(slots=True)
class UpdateRequest:
    """A workflow update as the worker gets it with a workflow task (Temporal's update Request)."""

    update_id: str
    name: str
    input: Payloads | None = None
    header: dict[str, Any] = field(default_factory=dict)
    identity: str = ""


@dataclass(slots=True)
class UpdateWorkflowRequest:
    namespace: str
    execution: WorkflowExecution
    """``run_id`` empty: the workflow's current run."""
    update_id: str
    name: str
    input: Payloads | None = None
    header: dict[str, Any] = field(default_factory=dict)
    identity: str = ""
    wait_stage: str = "COMPLETED"
    """``ACCEPTED`` or ``COMPLETED``: the stage the call waits for (up to ``timeout_s``)."""
    timeout_s: float = 60.0


@dataclass(slots=True)
class UpdateWorkflowResponse:
    update_id: str
    run_id: str
    stage: str
    """The stage reached: ``ADMITTED`` (the wait ran out first; ask again with the same id),
    ``ACCEPTED`` or ``COMPLETED``."""
    result: Payloads | None = None
    failure: dict[str, Any] | None = None
    """Set when the update was rejected by its validator or its handler failed (stage COMPLETED)."""


@dataclass(slots=True)
class PollWorkflowTaskResponse:
    task_token: bytes
    workflow_execution: WorkflowExecution
    workflow_type: str
    namespace: str
    attempt: int
    started_event_id: int
    history: list[HistoryEvent]
    """The history up to and including this task's WorkflowTaskStarted: all of it, or, for a task
    taken from the worker's sticky queue, only the events after the last workflow task that worker
    completed (the first event's id says which). A worker that holds the run in its cache applies
    only the events after the ones it has seen. A query task from a sticky queue has none: the
    worker answers from its cache, or reads the history itself."""
    query: WorkflowTaskQuery | None = None
    updates: list[UpdateRequest] = field(default_factory=list)
    """Updates for the workflow code to validate and run in this task (accepted or rejected by
    commands of the task's completion)."""


@dataclass(slots=True)
class RespondWorkflowTaskCompletedRequest:
    task_token: bytes
    commands: list[Command]
    identity: str = ""
    namespace: str = ""
    eager_activity_ids: list[str] = field(default_factory=list)
    """Activities scheduled by ``commands`` that the completing worker will run itself: those on the
    run's task queue come back started with the completion (eager dispatch)."""
    sticky_task_queue: str = ""
    """The anchors' StickyExecutionAttributes: the worker keeps the run cached and polls this queue,
    so the run's next workflow tasks go there with only the new events. Empty: not sticky."""
    sticky_schedule_to_start_timeout_ms: int = 0
    """How long a task may wait on ``sticky_task_queue`` before it goes to the normal queue with the
    whole history (0: the server's default, 5 s)."""


@dataclass(slots=True)
class RespondWorkflowTaskFailedRequest:
    task_token: bytes
    cause: str
    failure: dict[str, Any] | None
    identity: str = ""
    namespace: str = ""


@dataclass(slots=True)
class PollActivityTaskResponse:
    task_token: bytes
    workflow_execution: WorkflowExecution
    workflow_type: str
    namespace: str
    activity_id: str
    activity_type: str
    input: Payloads | None
    header: dict[str, Any]
    attempt: int
    scheduled_time: int
    current_attempt_scheduled_time: int
    started_time: int
    schedule_to_close_timeout_ms: int
    start_to_close_timeout_ms: int
    heartbeat_timeout_ms: int
    heartbeat_details: Payloads | None
    task_queue: str


@dataclass(slots=True)
class NamespaceInfo:
    name: str
    id: str
    description: str = ""
    owner_email: str = ""
    retention_days: int = 3
    state: str = "REGISTERED"
    is_global: bool = False
    clusters: list[str] = field(default_factory=list)
    active_cluster: str = ""
    failover_version: int = 0
    data: dict[str, str] = field(default_factory=dict)
    config_version: int = 0
    """Grows with every change of a global namespace, wherever it is made; a cluster applies a
    replicated change only when it is newer than what it has."""
    failover_history: list[str] = field(default_factory=list)
    """The namespace's failovers, newest last: ``<time> <from> -> <to> v<version> <graceful|forced>``."""
    history_archival_state: str = ""
    """``enabled`` or ``disabled``: whether retention archives the runs' histories before deleting
    them (``""`` at register: the cluster's ``namespaceDefaults.archival``)."""
    history_archival_uri: str = ""
    """Where: a ``file:///absolute/dir`` URI (filestore is the only provider)."""
    visibility_archival_state: str = ""
    """As ``history_archival_state``, for the runs' closed visibility records."""
    visibility_archival_uri: str = ""


@dataclass(slots=True)
class FailoverResponse:
    namespace: NamespaceInfo
    graceful: bool
    """The graceful handover completed (False: a forced failover, asked for or fallen back to)."""
    seconds: float
    message: str


class WorkflowService(Protocol):
    """What clients and workers call. Errors are ``cadenza.sdk.exceptions`` types."""

    async def start_workflow_execution(self, request: StartWorkflowRequest) -> StartWorkflowResponse: ...

    async def start_workflow_execution_and_wait(
        self, request: StartWorkflowRequest, wait_s: float
    ) -> tuple[StartWorkflowResponse, list[HistoryEvent]]:
        """Starts, then waits up to ``wait_s`` for the close: its close event, or nothing."""
        ...

    async def signal_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        signal_name: str,
        input: Payloads | None,
        *,
        identity: str = "",
        request_id: str = "",
        header: dict[str, Any] | None = None,
    ) -> None:
        """``header`` is written into the WorkflowExecutionSignaled event, where the run's inbound
        interceptors see it (``HandleSignalInput.headers``)."""
        ...

    async def query_workflow(
        self,
        namespace: str,
        execution: WorkflowExecution,
        query_type: str,
        args: Payloads | None,
        *,
        header: dict[str, Any] | None = None,
    ) -> Payloads | None:
        """``header`` reaches the query handler's inbound interceptors (``HandleQueryInput.headers``)."""
        ...

    async def update_workflow_execution(self, request: UpdateWorkflowRequest) -> UpdateWorkflowResponse:
        """Sends an update (deduplicated by its id) and waits for ``request.wait_stage``."""
        ...

    async def update_with_start_workflow_execution(
        self, start: StartWorkflowRequest, update: UpdateWorkflowRequest
    ) -> tuple[StartWorkflowResponse, UpdateWorkflowResponse]:
        """Starts the workflow unless it runs already (then uses that run), and updates it."""
        ...

    async def request_cancel_workflow_execution(
        self, namespace: str, execution: WorkflowExecution, *, identity: str = "", request_id: str = ""
    ) -> None: ...

    async def terminate_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        *,
        reason: str = "",
        details: Payloads | None = None,
        identity: str = "",
    ) -> None: ...

    async def describe_workflow_execution(
        self, namespace: str, execution: WorkflowExecution
    ) -> DescribeWorkflowResponse: ...

    async def get_workflow_execution_history(self, request: GetHistoryRequest) -> GetHistoryResponse: ...

    async def poll_workflow_task_queue(
        self, namespace: str, task_queue: str, *, identity: str = "", timeout_s: float = 60.0
    ) -> PollWorkflowTaskResponse | None: ...

    async def respond_workflow_task_completed(
        self, request: RespondWorkflowTaskCompletedRequest
    ) -> list[PollActivityTaskResponse]:
        """Returns the activity tasks started for the caller (``request.eager_activity_ids``)."""
        ...

    async def respond_workflow_task_failed(self, request: RespondWorkflowTaskFailedRequest) -> None: ...

    async def reset_sticky_task_queue(self, namespace: str, execution: WorkflowExecution) -> None:
        """The worker that had the run cached let it go (evicted it, or shut down): its next workflow
        task goes to the normal queue at once, with the whole history."""
        ...

    async def respond_query_task_completed(
        self,
        namespace: str,
        query_id: str,
        *,
        result: Payloads | None = None,
        error_message: str = "",
    ) -> None: ...

    async def poll_activity_task_queue(
        self, namespace: str, task_queue: str, *, identity: str = "", timeout_s: float = 60.0
    ) -> PollActivityTaskResponse | None: ...

    async def record_activity_task_heartbeat(
        self, task_token: bytes, details: Payloads | None, *, identity: str = ""
    ) -> bool:
        """Returns True when cancellation of the activity was requested."""
        ...

    async def respond_activity_task_completed(
        self, task_token: bytes, result: Payloads | None, *, identity: str = ""
    ) -> None: ...

    async def respond_activity_task_failed(
        self, task_token: bytes, failure: dict[str, Any], *, identity: str = ""
    ) -> None: ...

    async def respond_activity_task_canceled(
        self, task_token: bytes, details: Payloads | None, *, identity: str = ""
    ) -> None: ...

    # The same four by workflow id (``run_id`` empty: the current run) and activity id.

    async def record_activity_task_heartbeat_by_id(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str,
        details: Payloads | None, *, identity: str = "",
    ) -> bool: ...  # fmt: skip

    async def respond_activity_task_completed_by_id(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str,
        result: Payloads | None, *, identity: str = "",
    ) -> None: ...  # fmt: skip

    async def respond_activity_task_failed_by_id(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str,
        failure: dict[str, Any], *, identity: str = "",
    ) -> None: ...  # fmt: skip

    async def respond_activity_task_canceled_by_id(
        self, namespace: str, workflow_id: str, run_id: str, activity_id: str,
        details: Payloads | None, *, identity: str = "",
    ) -> None: ...  # fmt: skip

    async def register_namespace(self, info: NamespaceInfo) -> None: ...

    async def describe_namespace(self, name: str) -> NamespaceInfo: ...

    async def list_namespaces(self) -> list[NamespaceInfo]: ...

    async def update_namespace(self, info: NamespaceInfo) -> None: ...

    async def failover_namespace(
        self, name: str, target_cluster: str, *, graceful: bool = False, timeout_s: float = 60.0
    ) -> FailoverResponse:
        """Makes ``target_cluster`` the namespace's active cluster; ``graceful`` hands over without
        conflicts (or falls back to forced after ``timeout_s``)."""
        ...


@dataclass(slots=True)
class WorkflowExecutionInfo:
    """One run as visibility lists it."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: str
    """As queries spell it: Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew, TimedOut."""
    start_time: int
    execution_time: int
    close_time: int
    history_length: int
    task_queue: str
    search_attributes: dict[str, Any] = field(default_factory=dict)
    """Payloads (JSON) by attribute name."""
    memo: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ListWorkflowExecutionsResponse:
    executions: list[WorkflowExecutionInfo]
    next_page_token: bytes | None = None


@dataclass(slots=True)
class PollerInfo:
    """A worker seen polling a task queue recently (Temporal's ``PollerInfo``)."""

    identity: str
    last_access_time: int
    """When it last polled, wall-clock microseconds."""
    sticky_task_queue: str = ""
    """For a workflow task queue: the worker's own sticky queue, when it polls one."""


@dataclass(slots=True)
class DescribeTaskQueueResponse:
    """One task queue and task type as matching sees it (``DescribeTaskQueue``)."""

    pollers: list[PollerInfo] = field(default_factory=list)
    """Seen within the last few minutes, most recent first."""
    backlog_count_hint: int = 0
    """Tasks held in memory by this server's matching (queued, or read back from the store);
    tasks waiting only in the store are not counted."""


@dataclass(slots=True)
class CountWorkflowExecutionsResponse:
    count: int
    groups: dict[str, int] = field(default_factory=dict)
    """With group-by-status: the count of each status."""


ROLES = ("frontend", "history", "matching", "worker")
"""The server's roles, in the anchors' order: what a ``ClusterMember`` row is a member as."""


@dataclass(slots=True)
class ClusterMember:
    """One role of one server process in the cluster (the anchors' ``cluster_membership`` row).
    Times are microseconds since the epoch; past ``expiry`` with no newer heartbeat the process
    is taken for gone."""

    role: str
    host_id: str
    rpc_address: str
    """``host:port`` where the role's gRPC service answers."""
    session_start: int
    last_heartbeat: int
    expiry: int
