"""Version histories: how clusters tell whether an incoming batch of events extends, repeats or
forks the history they already have (NDC, "N data centers", conflict resolution).

Terms
-----

*Event id*
    A run's events are numbered 1, 2, 3, ... on every branch.
*Version*
    The failover version of the namespace when an event was written (see ``cluster.py``). Only the
    cluster that owns a version writes events with it, so two events with the same event id and the
    same version are the same event, and everything before them is the same too.
*Item* ``(event_id, version)``
    "Events up to ``event_id`` (and after the previous item's event id) were written with
    ``version``". The first item covers events ``1..event_id``.
*Branch* (``VersionHistory``)
    One linear history as a list of items, strictly increasing in event id and in version: an event
    is never written with a version lower than the one before it. Event ids are at least 1 and
    versions at least 0 (0 is the version of a local, non-replicated namespace).
*Branches* (``VersionHistories``)
    Every branch a run has had, and which one is current (the one mutable state is built from).
*LCA* (lowest common ancestor)
    The last event two branches share: the highest version both have, up to the smaller of the two
    event ids that version reaches on each.
*Winner*
    Of two branches, the one whose last item has the higher version (the later failover); equal
    versions mean one is a prefix of the other, and the longer one wins.

An incoming batch against the local branches
--------------------------------------------

A replication task carries a batch of events ``first..last`` and the sender's branch ``H`` (whose
last item is ``(last, version of the batch)``). With ``(i, lca) = local.find_lca(H)``:

======================================================  =============================================
Case                                                    What the receiver does
======================================================  =============================================
``H.last_item()`` is contained in some local branch      *duplicate or older*: drop it (applying is
(``find_first_index_containing`` succeeds)               idempotent; the events are already here)
``first <= lca.event_id`` (the batch overlaps events     drop events ``first..lca.event_id`` as
both branches already share)                             duplicates, then decide on the rest below
``is_lca_appendable(branch i, lca)`` and                 *append*: the batch extends branch ``i``
``first == lca.event_id + 1``                            (``add_or_update(last, version)``)
``is_lca_appendable(branch i, lca)`` and                 *gap*: ask the source cluster for events
``first > lca.event_id + 1``                             ``lca.event_id + 1 .. first - 1``, then retry
not appendable and ``first == lca.event_id + 1``         *fork*: new branch =
                                                         ``branch_i.copy_until(lca)`` plus the batch;
                                                         ``compare_for_winner`` picks the current
                                                         branch, mutable state is rebuilt from it, and
                                                         the losers' signals are re-applied
not appendable and ``first > lca.event_id + 1``          *gap on a fork*: fetch the missing range
                                                         first, then fork as above
``find_lca`` raises (no common ancestor)                 not the same run, or corrupt: the task goes
                                                         to the DLQ
======================================================  =============================================

Everything here is a pure function over small values, so the rules are written (and property-tested)
once and the replicator only orchestrates.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias

__all__ = [
    "VersionHistories",
    "VersionHistoriesList",
    "VersionHistory",
    "VersionHistoryError",
    "VersionHistoryItem",
    "compare_for_winner",
    "find_lca_item",
    "is_lca_appendable",
]


class VersionHistoryItem(NamedTuple):
    event_id: int
    """The last event id written with ``version`` on this branch."""
    version: int


class VersionHistoryError(ValueError):
    """A version history is inconsistent or an operation does not apply; the message names the ids."""


VersionHistoriesList: TypeAlias = list[Any]
"""The plain shape of ``VersionHistories.to_list()``:
``[current_index, [(branch_id, [(event_id, version), ...]), ...]]``."""


def _item(raw: Any) -> VersionHistoryItem:
    """Accept ``(event_id, version)`` pairs and anything with ``event_id``/``version`` attributes
    (the bus message's item), so callers need not convert."""
    try:
        if hasattr(raw, "event_id") and hasattr(raw, "version"):
            e, v = raw.event_id, raw.version
        else:
            e, v = raw
        return VersionHistoryItem(operator.index(e), operator.index(v))
    except (TypeError, ValueError):
        raise VersionHistoryError(
            f"version history item {raw!r} is not an (event_id, version) pair of integers"
        ) from None


def _check_next(prev: VersionHistoryItem | None, item: VersionHistoryItem, where: str) -> None:
    if item.version < 0:
        raise VersionHistoryError(f"{where}: item {tuple(item)} has negative version {item.version}")
    if prev is None:
        if item.event_id < 1:
            raise VersionHistoryError(
                f"{where}: item {tuple(item)} has event id {item.event_id}; event ids start at 1"
            )
        return
    if item.event_id <= prev.event_id:
        raise VersionHistoryError(
            f"{where}: item {tuple(item)} has event id {item.event_id}, not above the previous "
            f"item {tuple(prev)}'s event id {prev.event_id}"
        )
    if item.version <= prev.version:
        raise VersionHistoryError(
            f"{where}: item {tuple(item)} has version {item.version}, not above the previous "
            f"item {tuple(prev)}'s version {prev.version}"
        )


@dataclass(slots=True)
class VersionHistory:
    """One branch: items strictly increasing in event_id AND in version (versions only grow)."""

    branch_id: str = ""
    items: list[VersionHistoryItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Normalising here lets every method rely on the invariant instead of re-checking it.
        items = [_item(raw) for raw in self.items]
        prev: VersionHistoryItem | None = None
        for n, item in enumerate(items):
            _check_next(prev, item, f"branch {self.branch_id!r} item #{n}")
            prev = item
        self.items = items

    def is_empty(self) -> bool:
        return not self.items

    def last_item(self) -> VersionHistoryItem:
        if not self.items:
            raise VersionHistoryError(f"branch {self.branch_id!r} is empty: it has no last item")
        return self.items[-1]

    def first_item(self) -> VersionHistoryItem:
        if not self.items:
            raise VersionHistoryError(f"branch {self.branch_id!r} is empty: it has no first item")
        return self.items[0]

    def last_event_id(self) -> int:
        return self.items[-1].event_id if self.items else 0

    def add_or_update(self, event_id: int, version: int) -> None:
        """Record that events up to ``event_id`` (after the current last one) carry ``version``."""
        new = VersionHistoryItem(event_id, version)
        last = self.items[-1] if self.items else None
        if last is not None and event_id > last.event_id and version == last.version:
            self.items[-1] = new
            return
        _check_next(last, new, f"branch {self.branch_id!r}: cannot add event {event_id}")
        self.items.append(new)

    def _index_of_event(self, event_id: int) -> int:
        """Index of the item covering ``event_id``, or -1 when the event is not on this branch."""
        if event_id < 1 or event_id > self.last_event_id():
            return -1
        # Items are sorted by event id, and an item covers the events up to and including its own.
        return bisect_left(self.items, event_id, key=lambda it: it.event_id)

    def contains(self, item: VersionHistoryItem) -> bool:
        i = self._index_of_event(item.event_id)
        return i >= 0 and self.items[i].version == item.version

    def event_version(self, event_id: int) -> int:
        i = self._index_of_event(event_id)
        if i < 0:
            raise VersionHistoryError(
                f"event {event_id} is not on branch {self.branch_id!r} "
                f"(its events are 1..{self.last_event_id()})"
            )
        return self.items[i].version

    def copy(self) -> VersionHistory:
        # Items are immutable tuples, so a new list is a full copy.
        return VersionHistory(self.branch_id, list(self.items))

    def copy_until(self, item: VersionHistoryItem) -> VersionHistory:
        """The prefix of this branch ending at ``item`` (which must be on it): the base of a fork."""
        i = self._index_of_event(item.event_id)
        if i < 0 or self.items[i].version != item.version:
            raise VersionHistoryError(
                f"cannot copy branch {self.branch_id!r} until {tuple(item)}: event {item.event_id} "
                f"with version {item.version} is not on it ({self.to_list()})"
            )
        return VersionHistory(
            self.branch_id, [*self.items[:i], VersionHistoryItem(item.event_id, item.version)]
        )

    def to_list(self) -> list[tuple[int, int]]:
        return [(it.event_id, it.version) for it in self.items]

    @classmethod
    def from_list(cls, items: Iterable[Any], branch_id: str = "") -> VersionHistory:
        return cls(branch_id, list(items))


def _lca_or_none(local: VersionHistory, incoming: VersionHistory) -> VersionHistoryItem | None:
    # Both item lists are sorted by version, so walking down from the top of both finds the highest
    # version they have in common; single-writer-per-version means it marks their shared prefix.
    i, j = len(local.items) - 1, len(incoming.items) - 1
    while i >= 0 and j >= 0:
        a, b = local.items[i], incoming.items[j]
        if a.version == b.version:
            lca = a if a.event_id <= b.event_id else b
            # Both must hold `lca`; if the ranges of the version do not even overlap, two clusters
            # wrote with one version and the histories cannot be reconciled safely.
            start_a = local.items[i - 1].event_id if i > 0 else 0
            start_b = incoming.items[j - 1].event_id if j > 0 else 0
            if max(start_a, start_b) >= lca.event_id:
                raise VersionHistoryError(
                    f"branches {local.branch_id!r} {local.to_list()} and {incoming.branch_id!r} "
                    f"{incoming.to_list()} disagree on which events carry version {a.version} "
                    f"(events {start_a + 1}..{a.event_id} vs {start_b + 1}..{b.event_id})"
                )
            return lca
        if a.version > b.version:
            i -= 1
        else:
            j -= 1
    return None


def find_lca_item(local: VersionHistory, incoming: VersionHistory) -> VersionHistoryItem:
    """The last event both branches share, with its version."""
    lca = _lca_or_none(local, incoming)
    if lca is None:
        raise VersionHistoryError(
            f"branches {local.branch_id!r} {local.to_list()} and {incoming.branch_id!r} "
            f"{incoming.to_list()} have no common ancestor"
        )
    return lca


def is_lca_appendable(local: VersionHistory, lca: VersionHistoryItem) -> bool:
    """Whether events after ``lca`` extend ``local`` without forking: ``lca`` is its last item.
    An empty branch has no item to extend (and no LCA with anything), so it is never appendable."""
    return bool(local.items) and local.items[-1] == lca


def compare_for_winner(a: VersionHistory, b: VersionHistory) -> int:
    """-1, 0 or 1 as ``a`` loses to, ties or beats ``b``: the later failover (higher last version)
    wins, and with equal versions the longer branch (which then extends the other). An empty
    branch loses to any other."""

    def key(h: VersionHistory) -> tuple[bool, int, int]:
        if not h.items:
            return (False, 0, 0)
        last = h.items[-1]
        return (True, last.version, last.event_id)

    ka, kb = key(a), key(b)
    return (ka > kb) - (ka < kb)


@dataclass(slots=True)
class VersionHistories:
    """Every branch of a run, and which is current (the one mutable state follows)."""

    histories: list[VersionHistory]
    current_index: int = 0

    def __post_init__(self) -> None:
        if not self.histories:
            raise VersionHistoryError("a run has at least one branch; got none")
        self._check_index(self.current_index)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self.histories):
            raise VersionHistoryError(
                f"branch index {index} is out of range: the run has {len(self.histories)} branches"
            )

    def current(self) -> VersionHistory:
        return self.histories[self.current_index]

    def add(self, history: VersionHistory) -> int:
        """Store ``history`` (as given, not copied) as a new branch and return its index. The current
        branch does not change: the caller decides with ``compare_for_winner`` and ``set_current``."""
        for n, h in enumerate(self.histories):
            if h.items == history.items:
                raise VersionHistoryError(
                    f"branch {history.branch_id!r} {history.to_list()} is already branch #{n} "
                    f"({h.branch_id!r})"
                )
        self.histories.append(history)
        return len(self.histories) - 1

    def find_lca(self, incoming: VersionHistory) -> tuple[int, VersionHistoryItem]:
        """The branch sharing the most events with ``incoming`` (the first one on ties) and its LCA."""
        best: tuple[int, VersionHistoryItem] | None = None
        for n, h in enumerate(self.histories):
            lca = _lca_or_none(h, incoming)
            if lca is not None and (best is None or lca.event_id > best[1].event_id):
                best = (n, lca)
        if best is None:
            raise VersionHistoryError(
                f"branch {incoming.branch_id!r} {incoming.to_list()} has no common ancestor with "
                f"any of the {len(self.histories)} local branches"
            )
        return best

    def find_first_index_containing(self, item: VersionHistoryItem) -> int:
        for n, h in enumerate(self.histories):
            if h.contains(item):
                return n
        raise VersionHistoryError(f"no branch contains event {item.event_id} with version {item.version}")

    def set_current(self, index: int) -> bool:
        """Make branch ``index`` current; True when that changed anything."""
        self._check_index(index)
        changed = index != self.current_index
        self.current_index = index
        return changed

    def to_list(self) -> VersionHistoriesList:
        """``[current_index, [(branch_id, [(event_id, version), ...]), ...]]``: plain values."""
        return [self.current_index, [(h.branch_id, h.to_list()) for h in self.histories]]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> VersionHistories:
        try:
            current_index, branches = data
            histories = [VersionHistory.from_list(items, branch_id) for branch_id, items in branches]
            index = operator.index(current_index)
        except VersionHistoryError:
            raise
        except (TypeError, ValueError):
            raise VersionHistoryError(
                f"version histories {data!r} are not [current_index, [(branch_id, items), ...]]"
            ) from None
        return cls(histories, index)
