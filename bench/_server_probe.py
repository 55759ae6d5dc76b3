"""Runs ``cadenza server start-dev`` with two probes, for ``bench/noisy_neighbour.py --probe``:

* event-loop lag: a coroutine that asks to wake every 5 ms records by how much it woke late (the
  time every other callback in the one loop waited too);
* garbage-collector pauses: ``gc.callbacks`` time every collection and its generation.

At exit it writes both, with ``time.time()`` stamps so the bench can line them up with its own
slow requests, as JSON to the file named by ``CADENZA_PROBE_FILE``. Nothing here runs in a normal
server: it is a wrapper around the CLI's entry point.

With ``CADENZA_PROBE_NO_FREEZE`` set the server does not freeze its start-up heap (``gc.freeze``
becomes a no-op), as before ``cadenza.ops.heap``: ``noisy_neighbour.py --no-freeze`` compares the
two in one sitting.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TICK_S = 0.005
lags: list[tuple[float, float]] = []  # (wall time, seconds late) for lags over 2 ms
gc_pauses: list[tuple[float, int, float, float]] = []  # (wall time, generation, seconds, CPU seconds)
cpu: list[tuple[float, float]] = []  # (wall time, the process's CPU seconds so far), every second
_gc_started = (0.0, 0.0)
collected = [0, 0, 0]  # unreachable objects freed by collections of each generation
_samplers: set[asyncio.Task[None]] = set()  # held here: the loop keeps only weak references


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = (time.perf_counter(), time.thread_time())
    else:
        took = time.perf_counter() - _gc_started[0]
        if took > 0.001:
            cpu_s = time.thread_time() - _gc_started[1]
            gc_pauses.append((time.time(), int(info["generation"]), took, cpu_s))
        collected[int(info["generation"])] += int(info["collected"])


async def _lag_sampler() -> None:
    _samplers.add(asyncio.get_running_loop().create_task(_cpu_sampler()))
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(TICK_S)
        late = time.perf_counter() - t0 - TICK_S
        if late > 0.002:
            lags.append((time.time(), late))


async def _cpu_sampler() -> None:
    while True:
        cpu.append((time.time(), time.process_time()))
        await asyncio.sleep(1.0)


class _Policy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.call_soon(lambda: _samplers.add(loop.create_task(_lag_sampler())))
        return loop


def _heap() -> dict[str, Any]:
    """What a full collection has to walk: tracked objects, the most common types."""
    objects = gc.get_objects()
    types: dict[str, int] = {}
    for o in objects:
        name = type(o).__qualname__
        types[name] = types.get(name, 0) + 1
    top = sorted(types.items(), key=lambda kv: -kv[1])[:12]
    return {"tracked": len(objects), "frozen": gc.get_freeze_count(), "top_types": top}


def _dump() -> None:
    path = os.environ.get("CADENZA_PROBE_FILE")
    if path:
        probe = {"lags": lags, "gc": gc_pauses, "cpu": cpu, "heap": _heap(), "collected": collected}
        Path(path).write_text(json.dumps(probe))


def main() -> None:
    if os.environ.get("CADENZA_PROBE_NO_FREEZE"):
        gc.freeze = lambda: None  # the server as it was before ops/heap.py, for comparisons
    if os.environ.get("CADENZA_PROBE_FILE"):
        gc.callbacks.append(_on_gc)
        asyncio.set_event_loop_policy(_Policy())
        atexit.register(_dump)
    from cadenza.ops.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
