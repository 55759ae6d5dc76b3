"""The history page token: only what the server hands out is taken back."""

from __future__ import annotations

import pytest

from cadenza.engine.errors import InvalidArgumentError
from cadenza.engine.frontend import history_page_start


def test_a_token_the_server_handed_out_is_the_next_event_id() -> None:
    assert history_page_start(None) == 1
    assert history_page_start(b"") == 1
    assert history_page_start(b"1001") == 1001


@pytest.mark.parametrize("token", [b"-5", b"0", b" 10", b"1_0", b"1e3", b"\xff\x00", b"9" * 13, b"abc"])
def test_anything_else_is_refused_naming_the_field(token: bytes) -> None:
    with pytest.raises(InvalidArgumentError, match=r"next_page_token .* is not a history page token"):
        history_page_start(token)
