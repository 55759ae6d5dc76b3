"""The garbage collector's full collections in a server process, kept short.

CPython's full (generation 2) collection walks every container object that has survived two
younger collections, in one pause of the whole process: every namespace's calls wait in the one
event loop while it runs. In a server most of those objects are made by the start-up (modules,
functions, classes, parsed Avro schemas, the config) and live until exit, so each full collection
walks them again for nothing. Under a flood of admitted work full collections come every few
seconds (each time the surviving heap grew by a quarter), and on a shared 2-core machine each one
was measured at 100 to 200 ms of wall time: the p99 of every other namespace
(``bench/noisy_neighbour.py --probe``, ``bench/RESULTS.md``).

``settle_startup_heap`` is called once the server is ready: it collects what the start-up left
behind and then moves every object still alive to the permanent generation (``gc.freeze``), which
no later collection walks. Those objects are the ones that live until exit anyway; what the
server allocates afterwards (runs, tasks, calls) is collected as before.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("cadenza.server")


def settle_startup_heap() -> int:
    """Collects the start-up's garbage and freezes what is left; returns the number of objects
    frozen (no later full collection walks them)."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze the start-up heap", extra={"objects": frozen})
    return frozen
