"""The web UI's JSON API (``/api/v1/...``): what the pages read and the actions they send.

Every handler calls the same ``WorkflowService`` the SDK's client uses: the frontend in process
(``cadenza.sdk._local``) inside the server, or ``GrpcService`` for a UI that runs beside a remote
frontend. Errors leave as ``{"error": {"status", "message", ...}}`` with the HTTP status that
fits: 400 for bad input (naming the field, the value and the limit; a malformed list query also
gives the parser's ``position``), 404 for an unknown namespace or workflow, 409 for a refused
action, 502 for a server that failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from typing import Any, Protocol

from aiohttp import web

from cadenza.schemas.events import EventType
from cadenza.schemas.service import (
    CountWorkflowExecutionsResponse,
    DescribeTaskQueueResponse,
    GetHistoryRequest,
    ListWorkflowExecutionsResponse,
    WorkflowExecution,
    WorkflowService,
)
from cadenza.sdk.converter import default_converter
from cadenza.sdk.exceptions import (
    NamespaceNotFoundError,
    QueryFailedError,
    RPCError,
    WorkflowNotFoundError,
)
from cadenza.sdk.history import WorkflowHistory
from cadenza.ui.encoding import decode_token, encode_token, event_json, readable
from cadenza.ui.timeline import Timelines

MAX_PAGE_SIZE = 1000
"""The most rows (or events) one page of the API returns: the frontend's own limit for lists."""
LONG_POLL_S = 20.0
"""How long a ``wait=true`` history read waits for new events before it answers with none."""
UI_IDENTITY = "cadenza-web-ui"
"""The identity the UI's actions are recorded with (the events' ``identity``)."""

_POSITION = re.compile(r"at position (\d+) of the query")
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
}


class UIService(WorkflowService, Protocol):
    """The calls the UI makes beyond the workers' ``WorkflowService``: visibility, reset, task
    queues and the cluster's description (both ``LocalService`` and ``GrpcService`` have them)."""

    async def list_workflow_executions(
        self, namespace: str, query: str = "", page_size: int = 100, next_page_token: bytes | None = None
    ) -> ListWorkflowExecutionsResponse: ...

    async def count_workflow_executions(
        self, namespace: str, query: str = "", *, group_by_status: bool = False
    ) -> CountWorkflowExecutionsResponse: ...

    async def reset_workflow_execution(
        self,
        namespace: str,
        execution: WorkflowExecution,
        *,
        reset_type: str,
        event_id: int = 0,
        reason: str = "",
        identity: str = "",
    ) -> str: ...

    async def describe_task_queue(
        self, namespace: str, task_queue: str, task_queue_type: str = "workflow"
    ) -> DescribeTaskQueueResponse: ...

    async def describe_cluster(self) -> dict[str, Any]: ...

    async def get_search_attributes(self) -> dict[str, str]: ...


class ApiError(Exception):
    def __init__(self, http_status: int, status: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.body = {"status": status, "message": message, **extra}


def bad_input(message: str, **extra: Any) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message, **extra)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=str))


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """The SDK's errors (and the API's own) as JSON bodies; only ``/api/`` paths are touched."""
    if not request.path.startswith("/api/"):
        return await handler(request)  # type: ignore[no-any-return]
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except ApiError as e:
        return _json({"error": e.body}, e.http_status)
    except (WorkflowNotFoundError, NamespaceNotFoundError) as e:
        return _json({"error": {"status": "NOT_FOUND", "message": str(e)}}, 404)
    except QueryFailedError as e:
        return _json({"error": {"status": "QUERY_FAILED", "message": e.message}}, 400)
    except RPCError as e:
        body: dict[str, Any] = {"status": e.status, "message": e.message}
        if e.status == "INVALID_ARGUMENT" and (m := _POSITION.search(e.message)):
            body["position"] = int(m.group(1))
        return _json({"error": body}, _HTTP_STATUS.get(e.status, 502))


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_input(f"{name} must be an integer (got {raw!r})", field=name) from None
    if not low <= value <= high:
        raise bad_input(f"{name} must be between {low} and {high} (got {value})", field=name)
    return value


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "")
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise bad_input(f"{name} must be true or false (got {raw!r})", field=name)


def _token(request: web.Request) -> bytes | None:
    try:
        return decode_token(request.query.get("next_page_token"))
    except ValueError as e:
        raise bad_input(str(e), field="next_page_token") from None


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError as e:
        raise bad_input(f"the request body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise bad_input(f"the request body must be a JSON object (got {type(body).__name__})")
    return body


def _str_field(body: dict[str, Any], name: str, *, required: bool = False, limit: int = 1000) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise bad_input(f"{name} must be a string (got {json.dumps(value)[:60]})", field=name)
    if required and not value.strip():
        raise bad_input(f"{name} is required", field=name)
    if len(value) > limit:
        raise bad_input(f"{name} is {len(value)} characters long; the limit is {limit}", field=name)
    return value


class UIApi:
    """The handlers; ``routes`` lists them for the application."""

    def __init__(self, service: UIService) -> None:
        self.service = service
        self.timelines = Timelines(service)

    def routes(self) -> list[web.RouteDef]:
        ns = "/api/v1/namespaces/{namespace}"
        wf = ns + "/workflows/{workflow_id}"
        return [
            web.get("/api/v1/namespaces", self.list_namespaces),
            web.get(ns, self.describe_namespace),
            web.get(ns + "/search-attributes", self.search_attributes),
            web.get(ns + "/workflows", self.list_workflows),
            web.get(ns + "/workflow-counts", self.count_workflows),
            web.get(ns + "/task-queues/{task_queue}", self.describe_task_queue),
            web.get(wf, self.describe_workflow),
            web.get(wf + "/history", self.history),
            web.get(wf + "/history.json", self.download_history),
            web.get(wf + "/timeline", self.timeline),
            web.post(wf + "/signal", self.signal),
            web.post(wf + "/cancel", self.cancel),
            web.post(wf + "/terminate", self.terminate),
            web.post(wf + "/reset", self.reset),
            web.post(wf + "/query", self.query),
            web.get("/api/v1/cluster", self.cluster),
        ]

    # -- namespaces and the cluster ------------------------------------------------------------------

    async def list_namespaces(self, request: web.Request) -> web.Response:
        infos = await self.service.list_namespaces()
        return _json({"namespaces": [dataclasses.asdict(n) for n in sorted(infos, key=lambda n: n.name)]})

    async def describe_namespace(self, request: web.Request) -> web.Response:
        info = await self.service.describe_namespace(request.match_info["namespace"])
        return _json(dataclasses.asdict(info))

    async def search_attributes(self, request: web.Request) -> web.Response:
        await self.service.describe_namespace(request.match_info["namespace"])  # 404 for an unknown one
        return _json({"search_attributes": await self.service.get_search_attributes()})

    async def cluster(self, request: web.Request) -> web.Response:
        return _json(await self.service.describe_cluster())

    async def describe_task_queue(self, request: web.Request) -> web.Response:
        """Both task types of the queue: ``DescribeTaskQueue`` twice, as Temporal's UI asks."""
        namespace, name = request.match_info["namespace"], request.match_info["task_queue"]
        workflow, activity = await asyncio.gather(
            self.service.describe_task_queue(namespace, name, "workflow"),
            self.service.describe_task_queue(namespace, name, "activity"),
        )
        return _json(
            {
                "name": name,
                "workflow": _task_queue_json(workflow),
                "activity": _task_queue_json(activity),
            }
        )

    # -- workflows -----------------------------------------------------------------------------------

    async def list_workflows(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        query = request.query.get("query", "")
        page_size = _int_param(request, "page_size", 50, 1, MAX_PAGE_SIZE)
        page = await self.service.list_workflow_executions(namespace, query, page_size, _token(request))
        rows = []
        for e in page.executions:
            row = dataclasses.asdict(e)
            row["search_attributes"] = readable(e.search_attributes)
            row["memo"] = readable(e.memo)
            rows.append(row)
        return _json({"executions": rows, "next_page_token": encode_token(page.next_page_token)})

    async def count_workflows(self, request: web.Request) -> web.Response:
        namespace = request.match_info["namespace"]
        counts = await self.service.count_workflow_executions(
            namespace, request.query.get("query", ""), group_by_status=True
        )
        return _json({"count": counts.count, "groups": counts.groups})

    def _execution(self, request: web.Request) -> tuple[str, WorkflowExecution]:
        return request.match_info["namespace"], WorkflowExecution(
            request.match_info["workflow_id"], request.query.get("run_id", "")
        )

    async def describe_workflow(self, request: web.Request) -> web.Response:
        namespace, execution = self._execution(request)
        d = await self.service.describe_workflow_execution(namespace, execution)
        pinned = WorkflowExecution(d.workflow_id, d.run_id)
        first = await self.service.get_workflow_execution_history(
            GetHistoryRequest(namespace, pinned, maximum_page_size=1)
        )
        started = first.events[0].attributes if first.events else {}
        out: dict[str, Any] = {
            "execution": readable(_describe_dict(d)),
            "input": readable(started.get("input") or []),
            "continued_from_run_id": started.get("continued_execution_run_id") or "",
            "close_event": None,
            "continued_as_new_run_id": "",
        }
        if d.status != "RUNNING":
            close = await self.service.get_workflow_execution_history(
                GetHistoryRequest(namespace, pinned, close_event_only=True, timeout_s=1.0)
            )
            if close.events:
                ev = close.events[-1]
                out["close_event"] = event_json(ev)
                if ev.event_type == EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                    out["continued_as_new_run_id"] = ev.attributes.get("new_execution_run_id", "")
        return _json(out)

    async def history(self, request: web.Request) -> web.Response:
        namespace, execution = self._execution(request)
        page_size = _int_param(request, "page_size", 200, 1, MAX_PAGE_SIZE)
        wait = _bool_param(request, "wait")
        token = _token(request)
        first_event_id = _int_param(request, "first_event_id", 0, 1, 2**62)
        if first_event_id:
            if token is not None:
                raise bad_input("give next_page_token or first_event_id, not both", field="first_event_id")
            # The frontend's history page token is the id of the page's first event; a page that
            # follows a run live starts after the last event the page shows.
            token = str(first_event_id).encode()
        resp = await self.service.get_workflow_execution_history(
            GetHistoryRequest(
                namespace,
                execution,
                next_page_token=token,
                maximum_page_size=page_size,
                wait_new_event=wait,
                timeout_s=LONG_POLL_S,
            )
        )
        return _json(
            {
                "events": [event_json(e) for e in resp.events],
                "next_page_token": encode_token(resp.next_page_token),
                "run_id": resp.run_id,
            }
        )

    async def _all_events(self, namespace: str, execution: WorkflowExecution) -> tuple[str, list[Any]]:
        events: list[Any] = []
        token: bytes | None = None
        run_id = execution.run_id
        while True:
            resp = await self.service.get_workflow_execution_history(
                GetHistoryRequest(
                    namespace, execution, next_page_token=token, maximum_page_size=MAX_PAGE_SIZE
                )
            )
            events += resp.events
            run_id = resp.run_id or run_id
            # Pin the run: the current run may change (continue-as-new) between two pages.
            execution = WorkflowExecution(execution.workflow_id, run_id)
            token = resp.next_page_token
            if token is None or not resp.events:
                return run_id, events

    async def download_history(self, request: web.Request) -> web.Response:
        """The run's history in the JSON that ``cadenza.worker.Replayer`` and ``wf show -o json`` use."""
        namespace, execution = self._execution(request)
        run_id, events = await self._all_events(namespace, execution)
        text = WorkflowHistory(execution.workflow_id, run_id, events).to_json()
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", execution.workflow_id)[:80]
        return web.Response(
            text=text,
            content_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{safe}-{run_id}.history.json"'},
        )

    async def timeline(self, request: web.Request) -> web.Response:
        """Activities, timers and children as spans, folded from the run's history page by page
        and kept (``cadenza.ui.timeline``: bounded per request, and capped for very long runs)."""
        namespace, execution = self._execution(request)
        return _json(await self.timelines.timeline(namespace, execution))

    # -- actions -------------------------------------------------------------------------------------

    async def signal(self, request: web.Request) -> web.Response:
        namespace, execution = self._execution(request)
        body = await _body(request)
        name = _str_field(body, "name", required=True, limit=255)
        args = body.get("input", [])
        if not isinstance(args, list):
            raise bad_input("input must be a JSON array of the signal's arguments", field="input")
        payloads = default_converter().to_payloads(args) if args else None
        await self.service.signal_workflow_execution(
            namespace, execution, name, payloads, identity=UI_IDENTITY
        )
        return _json({"signaled": name})

    async def cancel(self, request: web.Request) -> web.Response:
        namespace, execution = self._execution(request)
        await self.service.request_cancel_workflow_execution(namespace, execution, identity=UI_IDENTITY)
        return _json({"cancel_requested": True})

    async def terminate(self, request: web.Request) -> web.Response:
        namespace, execution = self._execution(request)
        body = await _body(request)
        reason = _str_field(body, "reason")
        await self.service.terminate_workflow_execution(
            namespace, execution, reason=reason, identity=UI_IDENTITY
        )
        return _json({"terminated": True})

    async def reset(self, request: web.Request) -> web.Response:
        namespace, execution = self._execution(request)
        body = await _body(request)
        event_id = body.get("event_id")
        if not isinstance(event_id, int) or isinstance(event_id, bool) or event_id < 1:
            raise bad_input(
                f"event_id must be the id of a WorkflowTaskCompleted event (got {json.dumps(event_id)})",
                field="event_id",
            )
        reason = _str_field(body, "reason", required=True)
        run_id = await self.service.reset_workflow_execution(
            namespace, execution, reset_type="EventId", event_id=event_id, reason=reason, identity=UI_IDENTITY
        )
        return _json({"run_id": run_id})

    async def query(self, request: web.Request) -> web.Response:
        namespace, execution = self._execution(request)
        body = await _body(request)
        query_type = _str_field(body, "type", required=True, limit=255)
        args = body.get("args", [])
        if not isinstance(args, list):
            raise bad_input("args must be a JSON array of the query's arguments", field="args")
        result = await self.service.query_workflow(
            namespace, execution, query_type, default_converter().to_payloads(args) if args else None
        )
        return _json({"result": readable(result or [])})


def _task_queue_json(d: DescribeTaskQueueResponse) -> dict[str, Any]:
    return {"backlog": d.backlog_count_hint, "pollers": [dataclasses.asdict(p) for p in d.pollers]}


def _describe_dict(d: Any) -> dict[str, Any]:
    out = dataclasses.asdict(d)
    # A client's description carries decoded copies beside the payloads; the UI decodes itself.
    for key in ("raw_memo", "raw_search_attributes", "search_attribute_types"):
        out.pop(key, None)
    return out
