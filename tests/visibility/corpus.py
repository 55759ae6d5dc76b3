"""The visibility query corpus: a generated population of runs and queries with their expected results.

Expected results are computed here in plain Python from the population (own accessors, own time
parsing, own phrase matching), never by a store or the query package, so a store passes only by
agreeing with an independent reading of each query. Every store runs the same corpus
(``contract.py``).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cadenza.engine.persistence.protocols import ExecutionStatus
from cadenza.visibility.record import VisibilityRecord

NS = "ns-video"
OTHER_NS = "ns-other"

CUSTOM_ATTRIBUTES = {
    "CustomerId": "Keyword",
    "Description": "Text",
    "Priority": "Int",
    "Score": "Double",
    "IsPremium": "Bool",
    "DueDate": "Datetime",
    "Tags": "KeywordList",
}

NAMES = {
    ExecutionStatus.RUNNING: "Running",
    ExecutionStatus.COMPLETED: "Completed",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.CANCELED: "Canceled",
    ExecutionStatus.TERMINATED: "Terminated",
    ExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
    ExecutionStatus.TIMED_OUT: "TimedOut",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE = datetime(2026, 11, 1, tzinfo=UTC)
TYPES = ["Transcode", "DetectWatermark", "Classify", "UpdateRecord", "Gather"]
QUEUES = ["video", "video-gpu", "records"]
TAGS = ["hd", "4k", "hdr", "audio", "subtitles", "priority", "retry"]
WORDS = [
    "Transcode",
    "the",
    "cleaned",
    "video",
    "to",
    "1080p",
    "4K",
    "HDR",
    "audio",
    "track",
    "for",
    "upload",
]
ODD_CUSTOMERS = ["o'brien", "back\\slash", 'quote"d', "müller-ß", "x' OR 1=1 --"]


def micros(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


def at(text: str) -> int:
    """µs of an RFC 3339 string, parsed with the standard library (independently of the package)."""
    return micros(datetime.fromisoformat(text.replace("Z", "+00:00")))


def iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(rng: random.Random, i: int, namespace: str, prev_start: int) -> VisibilityRecord:
    wf_type = rng.choice(TYPES)
    start = (
        micros(BASE) + rng.randrange(0, 30 * 86_400) * 1_000_000 + rng.choice([0, 0, rng.randrange(10**6)])
    )
    if i % 10 == 9:
        start = prev_start  # ties on StartTime exercise the RunId tie-break of paging
    status = rng.choice(list(ExecutionStatus) + [ExecutionStatus.RUNNING] * 3)
    attrs: dict[str, object] = {}
    if rng.random() < 0.8:
        attrs["CustomerId"] = f"cust-{rng.randint(1, 25):03d}" if i % 37 else ODD_CUSTOMERS[i // 37 % 5]
    if rng.random() < 0.7:
        attrs["Description"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
    if rng.random() < 0.75:
        attrs["Priority"] = rng.randint(-5, 10)
    if rng.random() < 0.75:
        attrs["Score"] = rng.randrange(0, 401) / 4
    if rng.random() < 0.7:
        attrs["IsPremium"] = rng.random() < 0.4
    if rng.random() < 0.7:
        attrs["DueDate"] = BASE + timedelta(
            days=rng.randint(0, 60), microseconds=rng.choice([0, rng.randrange(10**6)])
        )
    if rng.random() < 0.8:
        attrs["Tags"] = rng.sample(TAGS, rng.randint(0, 4))
    memo = (
        {"note": {"metadata": {"encoding": b"json/plain"}, "data": f'"run {i}"'.encode()}}
        if i % 3 == 0
        else {}
    )
    return VisibilityRecord(
        namespace_id=namespace,
        workflow_id=f"video-{i:04d}-{wf_type.lower()}",
        run_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        workflow_type=wf_type,
        start_time=start,
        execution_time=start + rng.choice([0, 0, 0, 5_000_000, 3_600_000_000]),
        close_time=0 if status is ExecutionStatus.RUNNING else start + rng.randrange(1, 86_400) * 1_000_000,
        status=status,
        history_length=rng.randint(3, 500),
        task_queue=rng.choice(QUEUES),
        search_attributes=attrs,  # type: ignore[arg-type]
        memo=memo,
        task_id=1000 + i,
    )


def population() -> list[VisibilityRecord]:
    """300 runs in NS and 40 in OTHER_NS, the same on every call."""
    rng = random.Random(20261101)
    out: list[VisibilityRecord] = []
    prev = micros(BASE)
    for i in range(340):
        r = _record(rng, i, NS if i < 300 else OTHER_NS, prev)
        prev = r.start_time
        out.append(r)
    return out


POPULATION = population()
MAIN = [r for r in POPULATION if r.namespace_id == NS]


# -- accessors the expectations use -----------------------------------------------------------------


def sa(r: VisibilityRecord, name: str) -> object:
    """A custom value, None when absent (an empty KeywordList counts as absent)."""
    v = r.search_attributes.get(name)
    if v == []:
        return None
    return micros(v) if isinstance(v, datetime) else v


def tags(r: VisibilityRecord) -> list[str]:
    return list(r.search_attributes.get("Tags", []))  # type: ignore[arg-type]


def has_phrase(r: VisibilityRecord, phrase: str) -> bool:
    text = r.search_attributes.get("Description")
    if not isinstance(text, str):
        return False
    words, want = re.findall(r"[0-9a-z_]+", text.lower()), re.findall(r"[0-9a-z_]+", phrase.lower())
    return any(words[k : k + len(want)] == want for k in range(len(words) - len(want) + 1))


def closed(r: VisibilityRecord) -> int | None:
    return r.close_time or None


Getter = Callable[[VisibilityRecord], object]

SORT_KEYS: dict[str, Getter] = {
    "StartTime": lambda r: r.start_time,
    "CloseTime": closed,
    "ExecutionTime": lambda r: r.execution_time,
    "HistoryLength": lambda r: r.history_length,
    "WorkflowType": lambda r: r.workflow_type,
    "WorkflowId": lambda r: r.workflow_id,
    "RunId": lambda r: r.run_id,
    "ExecutionStatus": lambda r: NAMES[r.status],
    **{name: (lambda r, n=name: sa(r, n)) for name in CUSTOM_ATTRIBUTES},
}


def ordered(records: list[VisibilityRecord], key: str, descending: bool) -> list[str]:
    """Run ids in the order a store must return: by ``key`` (absent last), then run id, same direction."""
    get = SORT_KEYS[key]
    present = sorted(
        (r for r in records if get(r) is not None), key=lambda r: (get(r), r.run_id), reverse=descending
    )
    missing = sorted((r for r in records if get(r) is None), key=lambda r: r.run_id, reverse=descending)
    return [r.run_id for r in present + missing]


@dataclass(frozen=True)
class Case:
    """One query with its expected result over the population."""

    query: str
    matches: Callable[[VisibilityRecord], bool]
    order: tuple[str, bool] = ("StartTime", True)
    """(attribute, descending) the results must follow; the default is the stores' default order."""
    page_size: int = 40
    namespace: str = NS

    def expected(self) -> list[str]:
        pool = [r for r in POPULATION if r.namespace_id == self.namespace and self.matches(r)]
        return ordered(pool, *self.order)


def _pick(n: int) -> VisibilityRecord:
    return MAIN[n]


def _with(name: str, n: int = 0) -> VisibilityRecord:
    """The n-th run of NS that has custom attribute ``name``."""
    return [r for r in MAIN if sa(r, name) is not None][n]


R17, R42, R99, R150 = _pick(17), _pick(42), _pick(99), _pick(150)
CLOSED = next(r for r in MAIN[60:] if r.close_time)
SCORED = _with("Score", 5)
DUE = next(
    r
    for r in MAIN
    if isinstance(r.search_attributes.get("DueDate"), datetime) and r.search_attributes["DueDate"].microsecond
)  # type: ignore[union-attr]
TIE = MAIN[19]  # i % 10 == 9: shares its StartTime with MAIN[18]
T10, T15, T20 = at("2026-11-10T00:00:00Z"), at("2026-11-15T00:00:00Z"), at("2026-11-20T00:00:00Z")
RUNNING, COMPLETED = ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED
BAD = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.TERMINATED)


def _prio(r: VisibilityRecord) -> int | None:
    v = sa(r, "Priority")
    return v if isinstance(v, int) else None


def _score(r: VisibilityRecord) -> float | None:
    v = sa(r, "Score")
    return v if isinstance(v, float) else None


def _cust(r: VisibilityRecord) -> str | None:
    v = sa(r, "CustomerId")
    return v if isinstance(v, str) else None


def _due(r: VisibilityRecord) -> int | None:
    v = sa(r, "DueDate")
    return v if isinstance(v, int) else None


def _in(value: object, low: object, high: object) -> bool:
    return value is not None and low <= value <= high  # type: ignore[operator]


CASES: list[Case] = [
    # -- system keywords ------------------------------------------------------------------------
    Case("WorkflowType = 'Transcode'", lambda r: r.workflow_type == "Transcode"),
    Case("WorkflowType != 'Transcode'", lambda r: r.workflow_type != "Transcode"),
    Case("WorkflowType <> 'Gather'", lambda r: r.workflow_type != "Gather"),
    Case("ExecutionStatus = 'Running'", lambda r: r.status is RUNNING),
    Case("ExecutionStatus != 'Completed'", lambda r: r.status is not COMPLETED),
    Case("ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated')", lambda r: r.status in BAD),
    Case("ExecutionStatus NOT IN ('Running', 'Completed')", lambda r: r.status not in (RUNNING, COMPLETED)),
    Case(f"WorkflowId = '{R17.workflow_id}'", lambda r: r.workflow_id == R17.workflow_id),
    Case(f'RunId = "{R42.run_id}"', lambda r: r.run_id == R42.run_id),
    Case(
        f"RunId IN ('{R17.run_id}', '{R42.run_id}', '{R99.run_id}', 'no-such-run')",
        lambda r: r.run_id in (R17.run_id, R42.run_id, R99.run_id),
        page_size=1,
    ),
    Case("TaskQueue = 'video-gpu'", lambda r: r.task_queue == "video-gpu"),
    Case("WorkflowId STARTS_WITH 'video-01'", lambda r: r.workflow_id.startswith("video-01")),
    Case("WorkflowId NOT STARTS_WITH 'video-00'", lambda r: not r.workflow_id.startswith("video-00")),
    Case("WorkflowType > 'Classify'", lambda r: r.workflow_type > "Classify"),
    Case("WorkflowType BETWEEN 'Classify' AND 'Gather'", lambda r: "Classify" <= r.workflow_type <= "Gather"),
    Case(
        "WorkflowType NOT BETWEEN 'Classify' AND 'Gather'",
        lambda r: not "Classify" <= r.workflow_type <= "Gather",
    ),
    # -- system times and ints ------------------------------------------------------------------
    Case("StartTime > '2026-11-15T00:00:00Z'", lambda r: r.start_time > T15),
    Case(f"StartTime >= '{iso(TIE.start_time)}'", lambda r: r.start_time >= TIE.start_time),
    Case(f"StartTime = '{iso(TIE.start_time)}'", lambda r: r.start_time == TIE.start_time, page_size=1),
    Case("StartTime < '2026-11-05T12:30:00+02:00'", lambda r: r.start_time < at("2026-11-05T10:30:00Z")),
    Case(
        "StartTime <= '2026-11-05 10:30:00.5z'", lambda r: r.start_time <= at("2026-11-05T10:30:00.500000Z")
    ),
    Case(
        "StartTime BETWEEN '2026-11-10T00:00:00Z' AND '2026-11-20T00:00:00Z'",
        lambda r: T10 <= r.start_time <= T20,
    ),
    Case("CloseTime IS NULL", lambda r: not r.close_time),
    Case("CloseTime IS NOT NULL", lambda r: bool(r.close_time)),
    Case("CloseTime > '2026-11-20T00:00:00Z'", lambda r: bool(r.close_time) and r.close_time > T20),
    Case(
        f"CloseTime != '{iso(CLOSED.close_time)}'",
        lambda r: bool(r.close_time) and r.close_time != CLOSED.close_time,
    ),
    Case("ExecutionTime >= '2026-11-20T00:00:00.000001Z'", lambda r: r.execution_time >= T20 + 1),
    Case("HistoryLength > 100", lambda r: r.history_length > 100),
    Case("HistoryLength BETWEEN 10 AND 50", lambda r: 10 <= r.history_length <= 50),
    Case(
        f"HistoryLength IN (3, 4, 5, {R150.history_length})",
        lambda r: r.history_length in (3, 4, 5, R150.history_length),
    ),
    Case("HistoryLength NOT BETWEEN 10 AND 400", lambda r: not 10 <= r.history_length <= 400),
    # -- custom Keyword ---------------------------------------------------------------------------
    Case("CustomerId = 'cust-007'", lambda r: _cust(r) == "cust-007"),
    Case("CustomerId != 'cust-007'", lambda r: _cust(r) not in (None, "cust-007")),
    Case(
        "CustomerId IN ('cust-001', 'cust-002', 'cust-003')",
        lambda r: _cust(r) in ("cust-001", "cust-002", "cust-003"),
    ),
    Case(
        "CustomerId NOT IN ('cust-001', 'cust-002')", lambda r: _cust(r) not in (None, "cust-001", "cust-002")
    ),
    Case("CustomerId STARTS_WITH 'cust-01'", lambda r: (_cust(r) or "").startswith("cust-01")),
    Case("CustomerId IS NULL", lambda r: _cust(r) is None),
    Case("CustomerId IS NOT NULL", lambda r: _cust(r) is not None),
    Case("CustomerId >= 'cust-020'", lambda r: _cust(r) is not None and _cust(r) >= "cust-020"),  # type: ignore[operator]
    # quoting, escapes and injection attempts: values are data, never SQL or DSL
    Case("CustomerId = 'o''brien'", lambda r: _cust(r) == "o'brien"),
    Case("CustomerId = 'o\\'brien'", lambda r: _cust(r) == "o'brien"),
    Case("CustomerId = 'back\\\\slash'", lambda r: _cust(r) == "back\\slash"),
    Case('CustomerId = "quote\\"d"', lambda r: _cust(r) == 'quote"d'),
    Case("CustomerId = 'müller-ß'", lambda r: _cust(r) == "müller-ß"),
    Case("CustomerId = 'x'' OR 1=1 --'", lambda r: _cust(r) == "x' OR 1=1 --"),
    Case("CustomerId = 'x'' OR ''1''=''1'", lambda r: _cust(r) == "x' OR '1'='1"),
    Case("WorkflowType = 'Transcode\\'); DROP TABLE executions_visibility; --'", lambda r: False),
    # -- custom Int / Double / Bool / Datetime -----------------------------------------------------
    Case("Priority > 5", lambda r: _in(_prio(r), 6, 10**9)),
    Case("Priority <= -2", lambda r: _in(_prio(r), -(10**9), -2)),
    Case("Priority = 0", lambda r: _prio(r) == 0),
    Case("Priority != 0", lambda r: _prio(r) not in (None, 0)),
    Case("Priority BETWEEN -1 AND 1", lambda r: _in(_prio(r), -1, 1)),
    Case("Priority IN (1, 3, 7)", lambda r: _prio(r) in (1, 3, 7)),
    Case("Priority NOT IN (1, 3, 7)", lambda r: _prio(r) not in (None, 1, 3, 7)),
    Case("Priority IS NULL", lambda r: _prio(r) is None),
    Case("Score > 50.5", lambda r: _in(_score(r), 50.5001, 1e9)),
    Case("Score <= 25", lambda r: _in(_score(r), -1e9, 25.0)),
    Case(
        f"Score = {SCORED.search_attributes['Score']}",
        lambda r: _score(r) == SCORED.search_attributes["Score"],
    ),
    Case(
        f"Score != {SCORED.search_attributes['Score']}",
        lambda r: _score(r) not in (None, SCORED.search_attributes["Score"]),
    ),
    Case("Score BETWEEN 10 AND 20.5", lambda r: _in(_score(r), 10.0, 20.5)),
    Case("Score > 1e1 AND Score < 1.5E1", lambda r: _in(_score(r), 10.0001, 14.9999)),
    Case("IsPremium = true", lambda r: sa(r, "IsPremium") is True),
    Case("IsPremium = FALSE", lambda r: sa(r, "IsPremium") is False),
    Case("IsPremium != true", lambda r: sa(r, "IsPremium") is False),
    Case("IsPremium IN (true)", lambda r: sa(r, "IsPremium") is True),
    Case("IsPremium IS NULL", lambda r: sa(r, "IsPremium") is None),
    Case("DueDate > '2026-12-01T00:00:00Z'", lambda r: _in(_due(r), at("2026-12-01T00:00:00Z") + 1, 10**18)),
    Case(f"DueDate = '{iso(_due(DUE) or 0)}'", lambda r: _due(r) == _due(DUE)),
    Case(
        "DueDate BETWEEN '2026-11-10T00:00:00Z' AND '2026-11-12T23:59:59.999999Z'",
        lambda r: _in(_due(r), T10, at("2026-11-12T23:59:59.999999Z")),
    ),
    Case("DueDate IS NULL", lambda r: _due(r) is None),
    # -- custom KeywordList -----------------------------------------------------------------------
    Case("Tags = 'hd'", lambda r: "hd" in tags(r)),
    Case("Tags != 'hd'", lambda r: bool(tags(r)) and "hd" not in tags(r)),
    Case("Tags IN ('4k', 'hdr')", lambda r: bool({"4k", "hdr"} & set(tags(r)))),
    Case("Tags NOT IN ('4k', 'hdr')", lambda r: bool(tags(r)) and not {"4k", "hdr"} & set(tags(r))),
    Case("Tags STARTS_WITH 'h'", lambda r: any(t.startswith("h") for t in tags(r))),
    Case("Tags NOT STARTS_WITH 'h'", lambda r: bool(tags(r)) and not any(t.startswith("h") for t in tags(r))),
    Case("Tags IS NULL", lambda r: not tags(r)),
    # -- custom Text ------------------------------------------------------------------------------
    Case("Description = 'cleaned video'", lambda r: has_phrase(r, "cleaned video")),
    Case("Description = 'VIDEO'", lambda r: has_phrase(r, "video")),
    Case("Description != 'video'", lambda r: sa(r, "Description") is not None and not has_phrase(r, "video")),
    Case("Description = 'video cleaned'", lambda r: has_phrase(r, "video cleaned")),
    Case("Description = '4k, hdr!'", lambda r: has_phrase(r, "4k hdr")),
    Case("Description IS NOT NULL", lambda r: sa(r, "Description") is not None),
    # -- AND / OR / parentheses ---------------------------------------------------------------------
    Case(
        "WorkflowType = 'Transcode' AND ExecutionStatus = 'Running'",
        lambda r: r.workflow_type == "Transcode" and r.status is RUNNING,
    ),
    Case(
        "WorkflowType = 'Transcode' OR ExecutionStatus = 'Running'",
        lambda r: r.workflow_type == "Transcode" or r.status is RUNNING,
    ),
    Case(
        "WorkflowType = 'Transcode' AND ExecutionStatus = 'Running' OR Priority > 8",
        lambda r: (r.workflow_type == "Transcode" and r.status is RUNNING) or _in(_prio(r), 9, 10**9),
    ),
    Case(
        "WorkflowType = 'Transcode' AND (ExecutionStatus = 'Running' OR Priority > 8)",
        lambda r: r.workflow_type == "Transcode" and (r.status is RUNNING or _in(_prio(r), 9, 10**9)),
    ),
    Case(
        "(CustomerId = 'cust-003' OR Tags = '4k') AND IsPremium = true"
        " AND StartTime > '2026-11-10T00:00:00Z'",
        lambda r: (
            (_cust(r) == "cust-003" or "4k" in tags(r)) and sa(r, "IsPremium") is True and r.start_time > T10
        ),
    ),
    Case(
        "((Priority > 2)) and ((Score < 50) or (DueDate is null))",
        lambda r: _in(_prio(r), 3, 10**9) and (_in(_score(r), -1e9, 49.9999) or _due(r) is None),
    ),
    Case("ExecutionStatus = 'Running' AND ExecutionStatus = 'Completed'", lambda r: False),
    Case("", lambda r: True),
    # -- ORDER BY -------------------------------------------------------------------------------------
    Case(
        "WorkflowType = 'Transcode' AND ExecutionStatus = 'Running' AND StartTime > '2026-11-01T00:00:00Z' "
        "ORDER BY StartTime DESC",
        lambda r: r.workflow_type == "Transcode" and r.status is RUNNING,
        page_size=7,
    ),
    Case("ORDER BY StartTime ASC", lambda r: True, ("StartTime", False)),
    Case("order by StartTime", lambda r: True, ("StartTime", False), page_size=13),
    Case(
        "ExecutionStatus != 'Running' ORDER BY CloseTime DESC",
        lambda r: r.status is not RUNNING,
        ("CloseTime", True),
    ),
    Case("ORDER BY CloseTime ASC", lambda r: True, ("CloseTime", False), page_size=17),
    Case("ORDER BY CloseTime DESC", lambda r: True, ("CloseTime", True), page_size=17),
    Case("ORDER BY ExecutionTime DESC", lambda r: True, ("ExecutionTime", True)),
    Case("ORDER BY Priority DESC", lambda r: True, ("Priority", True), page_size=9),
    Case("ORDER BY Priority ASC", lambda r: True, ("Priority", False), page_size=9),
    Case("ORDER BY Score DESC", lambda r: True, ("Score", True)),
    Case("ORDER BY CustomerId", lambda r: True, ("CustomerId", False)),
    Case("ORDER BY DueDate DESC", lambda r: True, ("DueDate", True)),
    Case("ORDER BY IsPremium DESC", lambda r: True, ("IsPremium", True), page_size=11),
    Case("ORDER BY IsPremium ASC", lambda r: True, ("IsPremium", False), page_size=11),
    Case("ORDER BY HistoryLength ASC", lambda r: True, ("HistoryLength", False)),
    Case("ORDER BY WorkflowType DESC", lambda r: True, ("WorkflowType", True), page_size=8),
    Case("ORDER BY ExecutionStatus", lambda r: True, ("ExecutionStatus", False)),
    Case("ORDER BY RunId DESC", lambda r: True, ("RunId", True), page_size=50),
    Case("Tags = 'hd' ORDER BY Priority ASC", lambda r: "hd" in tags(r), ("Priority", False), page_size=5),
    Case(
        "CustomerId IS NOT NULL ORDER BY CustomerId DESC",
        lambda r: _cust(r) is not None,
        ("CustomerId", True),
    ),
    # -- another namespace: nothing leaks across ----------------------------------------------------
    Case("", lambda r: True, namespace=OTHER_NS, page_size=6),
    Case("WorkflowType = 'Transcode'", lambda r: r.workflow_type == "Transcode", namespace=OTHER_NS),
    Case("Tags = 'hd' ORDER BY Score DESC", lambda r: "hd" in tags(r), ("Score", True), namespace=OTHER_NS),
    Case(f"RunId = '{R17.run_id}'", lambda r: False, namespace=OTHER_NS),
]
