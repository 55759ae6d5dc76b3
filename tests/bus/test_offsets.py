"""The contiguous acknowledged point, case by case."""

from __future__ import annotations

import pytest

from cadenza.engine.bus._offsets import PartitionTracker


@pytest.mark.parametrize(
    "delivered, acked, point",
    [
        ([], [], 7),  # nothing in flight: the start
        ([7, 8, 9], [], 7),  # nothing acknowledged
        ([7, 8, 9], [7, 8], 9),  # a prefix
        ([7, 8, 9], [8, 9], 7),  # out of order: held back by 7
        ([7, 8, 9], [9, 8, 7], 10),  # all, in any order
        ([7, 10, 12], [7, 10], 12),  # gaps in the log (compaction) are not waited for
        ([7, 10, 12], [7, 10, 12], 13),
    ],
)
def test_commit_point(delivered: list[int], acked: list[int], point: int) -> None:
    tracker = PartitionTracker(7)
    for offset in delivered:
        tracker.deliver(offset)
    for offset in acked:
        assert tracker.ack(offset)
    assert tracker.point() == point
    assert tracker.pending() == len(delivered) - len(acked)


def test_stale_and_unknown_acks_change_nothing() -> None:
    tracker = PartitionTracker(0)
    tracker.deliver(0)
    assert not tracker.ack(5)  # never delivered here (e.g. from before a rebalance)
    assert tracker.point() == 0
    assert tracker.ack(0) and tracker.ack(0)  # repeated acks are harmless
    assert tracker.point() == 1


def test_rewind_redelivers_and_counts_attempts() -> None:
    tracker = PartitionTracker(0)
    for offset in (0, 1, 2):
        assert tracker.deliver(offset) == 1
    tracker.ack(0)
    tracker.ack(2)
    tracker.rewind(1)  # nack of 1: 1 and 2 come again, the ack of 2 is forgotten
    assert tracker.point() == 1
    assert tracker.deliver(1) == 2 and tracker.deliver(2) == 2
    tracker.ack(1)
    assert tracker.point() == 2
