"""The workflow event loop after its run is over."""

from __future__ import annotations

import gc
import sys
from typing import Any

from cadenza.sdk._runtime.loop import WorkflowEventLoop


class _Host:
    def loop_time(self) -> float:
        return 0.0

    def start_timer(self, delay: float, handle: Any) -> None: ...

    def cancel_timer(self, handle: Any) -> None: ...

    def on_callback_error(self, exc: BaseException) -> None: ...


def test_a_disposed_runs_unobserved_failure_is_collected_quietly() -> None:
    """``WorkflowInstance.dispose`` clears the loop; a future of the run that failed unobserved and
    is collected later must not make the collector print an AttributeError."""
    loop = WorkflowEventLoop(_Host())
    fut = loop.create_future()
    fut.set_exception(RuntimeError("never retrieved"))
    vars(loop).clear()  # what dispose does
    seen: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        del fut
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert seen == []
