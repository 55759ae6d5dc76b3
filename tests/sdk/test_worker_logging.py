"""What a worker logs when its polls fail: one line while the server cannot be reached, the
traceback for anything else."""

from __future__ import annotations

import logging

import pytest

from cadenza.sdk.exceptions import RPCError
from cadenza.sdk.worker import _log_poll_failure


def test_an_unreachable_server_is_one_line_and_other_failures_keep_their_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="cadenza.worker"):
        try:
            raise RPCError("UNAVAILABLE", "connections to all backends failing (9 attempts)")
        except RPCError as e:
            _log_poll_failure("activity", e)
        try:
            raise RuntimeError("a bug in the poller")
        except RuntimeError as e:
            _log_poll_failure("workflow", e)
    unavailable, bug = caplog.records
    assert unavailable.levelno == logging.WARNING and unavailable.exc_info is None
    assert "polling activity tasks failed" in unavailable.getMessage()
    assert "UNAVAILABLE: connections to all backends failing" in unavailable.getMessage()
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
    assert "polling workflow tasks failed" in bug.getMessage()
