"""The server freezes its start-up heap once it is ready, so later full collections do not walk
it (``cadenza.ops.heap``): what start-up left alive is frozen, its garbage is collected first, later
objects are collected as before, and ``serve_forever`` does it between start and serving."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from cadenza.ops import devserver
from cadenza.ops.devserver import ServerSettings, StopTimes, serve_forever
from cadenza.ops.heap import settle_startup_heap


class Node:
    """A container the collector tracks; two of them referring to each other make a cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Every test leaves the pytest process's heap as it found it: nothing frozen."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def _walked(obj: object) -> bool:
    """Whether a collection of any generation would look at ``obj``."""
    return any(o is obj for o in gc.get_objects())


def test_what_start_up_left_alive_is_frozen_and_not_walked(unfrozen: None) -> None:
    before = Node()
    assert _walked(before)
    frozen = settle_startup_heap()
    # Frozen objects still die when nothing refers to them (other threads of this process may
    # drop some meanwhile): the count can only have gone down since.
    assert 0 < gc.get_freeze_count() <= frozen
    assert not _walked(before)  # still alive, but no collection walks it again
    assert before.other is None


def test_start_up_garbage_is_collected_before_the_freeze(unfrozen: None) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b  # an unreachable cycle: only the collector frees it
    gc.disable()  # no automatic collection between here and the call
    try:
        settle_startup_heap()
    finally:
        gc.enable()
    assert gone() is None  # freezing it first would have kept it until exit


def test_what_the_server_makes_afterwards_is_collected_as_before(unfrozen: None) -> None:
    settle_startup_heap()
    a, b = Node(), Node()
    a.other, b.other = b, a
    assert _walked(a)
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None


class _FakeServerProcess:
    """Stands in for the engine: ``start`` asks for the stop at once, as an operator's SIGTERM."""

    frozen_at_start: int | None = None

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings

    async def start(self) -> int:
        type(self).frozen_at_start = gc.get_freeze_count()
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
        return 7233

    async def shutdown(self) -> StopTimes:
        return StopTimes(drained_s=0.0, total_s=0.0, calls_cut_off=0, calls_refused=0)


def test_serve_forever_freezes_the_heap_once_started(unfrozen: None, monkeypatch: Any) -> None:
    settled: list[int] = []

    def settle() -> int:
        settled.append(gc.get_freeze_count())
        return 0

    monkeypatch.setattr(devserver, "ServerProcess", _FakeServerProcess)
    monkeypatch.setattr(devserver, "settle_startup_heap", settle)
    asyncio.run(serve_forever(ServerSettings(), announce=False))
    assert _FakeServerProcess.frozen_at_start == 0  # not before the server has started
    assert settled == [0]  # then exactly once
