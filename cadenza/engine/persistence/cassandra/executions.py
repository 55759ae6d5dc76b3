"""Execution rows, current-run pointers and the shard's tasks, all in the shard's partition.

A create or update is compiled into statements for ONE conditional batch on the shard partition
(committed by the shard's ``ShardWriter``): the fence ``IF range_id = ?`` on the shard row, the run row
``IF db_version = ?`` (or ``IF NOT EXISTS`` for a new run), the pointer's condition for the create
mode, and plain inserts of the tasks. Cassandra applies it all or nothing.

History nodes live in another table (partitioned by branch), so they cannot join that batch. They are
written first; a batch that definitely failed (``applied = false``) deletes them again, so a failed
request leaves nothing behind. If the outcome is unknown (a timeout) they stay: the run's
``next_event_id`` does not cover them unless the batch applied, and the retry rewrites the same node id
with a higher ``txn_id``, which supersedes it.

The current-run pointer row holds only the run id and its create request id; its state, status and
versions are read from that run's row. So an update of a run never has to touch (or condition on) the
pointer, whether or not the run is current.
"""

from __future__ import annotations

import json

from ..errors import (
    ConditionFailedError,
    CurrentWorkflowConditionFailedError,
    EntityNotFoundError,
    PersistenceError,
    StoreUnavailableError,
)
from ..protocols import (
    CreateMode,
    CreateWorkflowRequest,
    CurrentExecution,
    ExecutionRow,
    ExecutionState,
    ExecutionStatus,
    HistoryAppend,
    NewRun,
    TaskCategory,
    UpdateWorkflowRequest,
    WorkflowTasks,
)
from .history import HistoryWriter
from .session import Bound, CassandraSession, Row
from .shard_tasks import TASK_TYPE, ShardTaskReader
from .shards import SHARD_KEY
from .writer import RowKey, ShardWriter, Txn

EXEC = 1
CURRENT = 2
_EXEC_KEY = (
    "shard_id = ? AND type = 1 AND namespace_id = ? AND workflow_id = ? AND run_id = ? "
    "AND visibility_ts = 0 AND task_id = 0"
)
_CURRENT_KEY = (
    "shard_id = ? AND type = 2 AND namespace_id = ? AND workflow_id = ? AND run_id = '' "
    "AND visibility_ts = 0 AND task_id = 0"
)
_EXEC_COLS = (
    "state, status, next_event_id, db_version, last_write_version, start_version, start_request_id, data"
)


def _to_execution(ns: str, wf: str, run: str, r: Row) -> ExecutionRow:
    return ExecutionRow(
        namespace_id=ns,
        workflow_id=wf,
        run_id=run,
        state=ExecutionState(r["state"]),
        status=ExecutionStatus(r["status"]),
        next_event_id=r["next_event_id"],
        db_version=r["db_version"],
        last_write_version=r["last_write_version"],
        start_request_id=r["start_request_id"] or "",
        data=r["data"] or b"",
        start_version=r["start_version"] or 0,
    )


def _size(tasks: WorkflowTasks, ex: ExecutionRow) -> int:
    return len(ex.data) + sum(len(t.data) + 64 for rows in tasks.by_category().values() for t in rows) + 512


class CassandraExecutionStore:
    def __init__(self, db: CassandraSession, history: HistoryWriter) -> None:
        self._db = db
        self._history = history
        self._writers: dict[int, ShardWriter] = {}
        self._fence = db.prepare(
            f"UPDATE {{ks}}.executions SET range_id = ? WHERE {SHARD_KEY} IF range_id = ?"
        )
        self._insert_exec = db.prepare(
            "INSERT INTO {ks}.executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, "
            f"task_id, {_EXEC_COLS}) VALUES (?, 1, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self._update_exec = db.prepare(
            "UPDATE {ks}.executions SET state = ?, status = ?, next_event_id = ?, db_version = ?, "
            "last_write_version = ?, start_version = ?, start_request_id = ?, data = ? "
            f"WHERE {_EXEC_KEY} IF db_version = ?"
        )
        self._insert_current = db.prepare(
            "INSERT INTO {ks}.executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, "
            "task_id, current_run_id, create_request_id) VALUES (?, 2, ?, ?, '', 0, 0, ?, ?) IF NOT EXISTS"
        )
        self._move_current = db.prepare(
            "UPDATE {ks}.executions SET current_run_id = ?, create_request_id = ? "
            f"WHERE {_CURRENT_KEY} IF current_run_id = ?"
        )
        # WORKFLOW_ID_REUSE conditions the previous run's row (state and last write version); a
        # conditional statement needs a SET, and rewriting the value the condition checks is a no-op.
        self._check_previous = db.prepare(
            f"UPDATE {{ks}}.executions SET last_write_version = ? WHERE {_EXEC_KEY} "
            "IF state IN (?, ?) AND last_write_version = ?"
        )
        self._select_exec = db.prepare(f"SELECT {_EXEC_COLS} FROM {{ks}}.executions WHERE {_EXEC_KEY}")
        self._select_current = db.prepare(
            f"SELECT current_run_id, create_request_id FROM {{ks}}.executions WHERE {_CURRENT_KEY}"
        )
        list_cols = f"namespace_id, workflow_id, run_id, {_EXEC_COLS}"
        self._list_first = db.prepare(
            f"SELECT {list_cols} FROM {{ks}}.executions WHERE shard_id = ? AND type = 1 LIMIT ?"
        )
        self._list_after = db.prepare(
            f"SELECT {list_cols} FROM {{ks}}.executions WHERE shard_id = ? AND type = 1 "
            "AND (namespace_id, workflow_id, run_id) > (?, ?, ?) LIMIT ?"
        )
        self._delete_exec = db.prepare(f"DELETE FROM {{ks}}.executions WHERE {_EXEC_KEY}")
        self._delete_current = db.prepare(
            f"DELETE FROM {{ks}}.executions WHERE {_CURRENT_KEY} IF current_run_id = ?"
        )
        self._insert_task = db.prepare(
            "INSERT INTO {ks}.executions (shard_id, type, namespace_id, workflow_id, run_id, visibility_ts, "
            "task_id, data) VALUES (?, ?, '', '', '', ?, ?, ?)"
        )
        self._tasks = ShardTaskReader(db)
        self.get_tasks = self._tasks.get_tasks
        self.complete_tasks = self._tasks.complete_tasks

    def writer(self, shard_id: int) -> ShardWriter:
        w = self._writers.get(shard_id)
        if w is None:
            w = self._writers[shard_id] = ShardWriter(self._db, self._fence, shard_id)
        return w

    # -- compiling requests into statements --------------------------------------------------------

    def _task_statements(self, shard_id: int, tasks: WorkflowTasks) -> list[Bound]:
        stmts: list[Bound] = []
        for category, rows in tasks.by_category().items():
            timer = category == TaskCategory.TIMER
            for t in rows:
                params = (shard_id, TASK_TYPE[category], t.visibility_time if timer else 0, t.task_id, t.data)
                stmts.append((self._insert_task, params))
        return stmts

    def _new_run_statements(self, shard_id: int, new_run: NewRun) -> list[Bound]:
        ex = new_run.execution
        stmts: list[Bound] = [
            (
                self._insert_exec,
                (shard_id, ex.namespace_id, ex.workflow_id, ex.run_id, int(ex.state), int(ex.status),
                 ex.next_event_id, ex.db_version, ex.last_write_version, ex.start_version,
                 ex.start_request_id, ex.data),
            )
        ]  # fmt: skip
        if new_run.mode == CreateMode.ZOMBIE:
            pass  # the current pointer stays where it is
        elif new_run.mode == CreateMode.BRAND_NEW:
            stmts.append(
                (
                    self._insert_current,
                    (shard_id, ex.namespace_id, ex.workflow_id, ex.run_id, ex.start_request_id),
                )
            )
        else:
            stmts.append(
                (
                    self._move_current,
                    (ex.run_id, ex.start_request_id, shard_id, ex.namespace_id, ex.workflow_id,
                     new_run.previous_run_id),
                )
            )  # fmt: skip
        if new_run.mode == CreateMode.WORKFLOW_ID_REUSE:
            lwv = new_run.previous_last_write_version
            stmts.append(
                (
                    self._check_previous,
                    (lwv, shard_id, ex.namespace_id, ex.workflow_id, new_run.previous_run_id,
                     int(ExecutionState.COMPLETED), int(ExecutionState.ZOMBIE), lwv),
                )
            )  # fmt: skip
        return stmts + self._task_statements(shard_id, new_run.tasks)

    # -- reading a failed batch's answer ------------------------------------------------------------

    async def _conflict(self, shard_id: int, ns: str, wf: str, message: str) -> PersistenceError:
        try:
            cur = await self.get_current_execution(shard_id, ns, wf)
        except EntityNotFoundError:
            return ConditionFailedError(f"workflow {ns}/{wf}: {message}; it has no current run now")
        return CurrentWorkflowConditionFailedError(
            f"workflow {ns}/{wf}: {message}",
            run_id=cur.run_id,
            request_id=cur.create_request_id,
            state=int(cur.state),
            status=int(cur.status),
            last_write_version=cur.last_write_version,
        )

    async def _check_new_run(
        self, shard_id: int, new_run: NewRun, rows: dict[RowKey, Row]
    ) -> PersistenceError | None:
        ex = new_run.execution
        ns, wf = ex.namespace_id, ex.workflow_id
        if (EXEC, ns, wf, ex.run_id) in rows:
            return ConditionFailedError(f"workflow {ns}/{wf}: run {ex.run_id} already exists")
        if new_run.mode == CreateMode.ZOMBIE:
            return None
        pointer = rows.get((CURRENT, ns, wf, ""))
        if new_run.mode == CreateMode.BRAND_NEW:
            if pointer is not None:
                return await self._conflict(
                    shard_id, ns, wf, f"a run already exists ({pointer['current_run_id']})"
                )
            return None
        if pointer is None:
            # The pointer the caller based its decision on is gone (deleted): reload and decide again.
            return ConditionFailedError(
                f"workflow {ns}/{wf}: no current run, expected {new_run.previous_run_id}"
            )
        if pointer.get("current_run_id") != new_run.previous_run_id:
            return await self._conflict(
                shard_id, ns, wf,
                f"current run is {pointer.get('current_run_id')}, expected {new_run.previous_run_id}",
            )  # fmt: skip
        if new_run.mode == CreateMode.WORKFLOW_ID_REUSE:
            prev = rows.get((EXEC, ns, wf, new_run.previous_run_id))
            if prev is None:
                return ConditionFailedError(f"workflow {ns}/{wf}: run {new_run.previous_run_id} not found")
            if prev.get("last_write_version") != new_run.previous_last_write_version or prev.get(
                "state"
            ) not in (ExecutionState.COMPLETED, ExecutionState.ZOMBIE):
                return await self._conflict(
                    shard_id, ns, wf,
                    f"current run {new_run.previous_run_id} is open or its last_write_version is not "
                    f"{new_run.previous_last_write_version}",
                )  # fmt: skip
        return None

    # -- writes -------------------------------------------------------------------------------------

    async def _submit(self, shard_id: int, txn: Txn, appends: list[HistoryAppend]) -> None:
        await self._history.write_all(appends)
        try:
            await self.writer(shard_id).submit(txn)
        except StoreUnavailableError:
            raise  # unknown outcome: the nodes must stay (see the module docstring)
        except PersistenceError:
            await self._history.undo_all(appends)
            raise

    async def create_workflow_execution(self, request: CreateWorkflowRequest) -> None:
        new_run, shard_id = request.new_run, request.shard_id
        ex = new_run.execution

        async def check(rows: dict[RowKey, Row]) -> PersistenceError | None:
            return await self._check_new_run(shard_id, new_run, rows)

        txn = Txn(
            request.range_id,
            self._new_run_statements(shard_id, new_run),
            frozenset({(ex.namespace_id, ex.workflow_id)}),
            check,
            _size(new_run.tasks, ex),
        )
        await self._submit(shard_id, txn, list(new_run.history))

    async def update_workflow_execution(self, request: UpdateWorkflowRequest) -> None:
        shard_id, ex, expected = request.shard_id, request.execution, request.expected_db_version
        key = (ex.namespace_id, ex.workflow_id, ex.run_id)
        stmts: list[Bound] = [
            (
                self._update_exec,
                (int(ex.state), int(ex.status), ex.next_event_id, ex.db_version, ex.last_write_version,
                 ex.start_version, ex.start_request_id, ex.data, shard_id, *key, expected),
            )
        ]  # fmt: skip
        stmts += self._task_statements(shard_id, request.tasks)
        can = request.continue_as_new
        appends = list(request.history)
        size = _size(request.tasks, ex)
        if can is not None:
            stmts += self._new_run_statements(shard_id, can)
            appends += can.history
            size += _size(can.tasks, can.execution)

        async def check(rows: dict[RowKey, Row]) -> PersistenceError | None:
            row = rows.get((EXEC, *key))
            where = f"execution {'/'.join(key)}"
            if row is None:
                return ConditionFailedError(f"{where} not found")
            if row.get("db_version") != expected:
                return ConditionFailedError(
                    f"{where}: db_version is {row.get('db_version')}, expected {expected}"
                )
            if can is not None:
                return await self._check_new_run(shard_id, can, rows)
            return None

        txn = Txn(request.range_id, stmts, frozenset({(ex.namespace_id, ex.workflow_id)}), check, size)
        await self._submit(shard_id, txn, appends)

    # -- reads and deletes --------------------------------------------------------------------------

    async def get_workflow_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> ExecutionRow:
        rows = await self._db.execute(self._select_exec, (shard_id, namespace_id, workflow_id, run_id))
        if not rows or rows[0].get("db_version") is None:
            raise EntityNotFoundError(f"execution {namespace_id}/{workflow_id}/{run_id} not found")
        return _to_execution(namespace_id, workflow_id, run_id, rows[0])

    async def get_current_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str
    ) -> CurrentExecution:
        rows = await self._db.execute(self._select_current, (shard_id, namespace_id, workflow_id))
        if not rows or not rows[0].get("current_run_id"):
            raise EntityNotFoundError(f"no current run for {namespace_id}/{workflow_id}")
        run_id = rows[0]["current_run_id"]
        try:
            run = await self.get_workflow_execution(shard_id, namespace_id, workflow_id, run_id)
        except EntityNotFoundError:
            raise EntityNotFoundError(
                f"current run {run_id} of {namespace_id}/{workflow_id} has no row (being deleted)"
            ) from None
        return CurrentExecution(
            run_id=run_id,
            create_request_id=rows[0].get("create_request_id") or "",
            state=run.state,
            status=run.status,
            last_write_version=run.last_write_version,
            start_version=run.start_version,
        )

    async def list_executions(
        self, shard_id: int, page_size: int, token: bytes | None = None
    ) -> tuple[list[ExecutionRow], bytes | None]:
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        if token:
            try:
                after = json.loads(token.decode())
            except (ValueError, UnicodeDecodeError) as exc:
                raise PersistenceError(f"invalid page token: {token!r}") from exc
            rows = await self._db.execute(self._list_after, (shard_id, *after, page_size + 1))
        else:
            rows = await self._db.execute(self._list_first, (shard_id, page_size + 1))
        runs = [_to_execution(r["namespace_id"], r["workflow_id"], r["run_id"], r) for r in rows]
        if len(runs) <= page_size:
            return runs, None
        last = runs[page_size - 1]
        return runs[:page_size], json.dumps([last.namespace_id, last.workflow_id, last.run_id]).encode()

    async def delete_workflow_execution(
        self, shard_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> None:
        # The pointer goes first (only if it points at this run; not applied otherwise, which is
        # fine), then the row: a crash in between leaves a row without a pointer, which a repeated
        # delete removes, never a pointer to a missing row.
        await self._db.execute(self._delete_current, (shard_id, namespace_id, workflow_id, run_id))
        await self._db.execute(self._delete_exec, (shard_id, namespace_id, workflow_id, run_id))

    def group_stats(self) -> tuple[int, int]:
        """(batches, requests) committed by this store's shard writers."""
        return (
            sum(w.batches for w in self._writers.values()),
            sum(w.requests for w in self._writers.values()),
        )
