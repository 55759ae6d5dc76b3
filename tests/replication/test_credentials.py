"""Which token a call from one cluster to another carries (``cadenza.replication.credentials``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cadenza.engine.forwarding import CALLER_TOKEN
from cadenza.replication.cluster import ClusterMetadata
from cadenza.replication.credentials import MAX_TOKEN_BYTES, ClusterCredentials


def credentials(token_file: Path | None) -> ClusterCredentials:
    meta = ClusterMetadata.dev("standby", auth_token_file=str(token_file) if token_file else "")
    return ClusterCredentials(meta.clusters)


def test_the_own_token_is_read_from_its_file_and_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first-token\n")
    creds = credentials(path)
    assert creds.own_token("active") == "first-token"
    assert creds.own_token("standby") == ""  # no token for calls to itself
    path.write_text("Bearer second-token-longer")  # the prefix is tolerated
    os.utime(path, ns=(1, 2_000_000_000))  # a rewrite within the same clock tick still counts
    assert creds.own_token("active") == "second-token-longer"


def test_an_unreadable_or_wrong_token_file_gives_no_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("two words")
    creds = credentials(path)
    assert creds.own_token("active") == ""
    assert "no spaces or line breaks" in caplog.text
    path.write_bytes(b"x" * (MAX_TOKEN_BYTES + 1))
    assert creds.own_token("active") == ""
    path.unlink()
    assert creds.own_token("active") == ""
    assert credentials(None).own_token("active") == ""


def test_a_forwarded_request_carries_its_callers_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("cluster-token")
    creds = credentials(path)
    forward = creds.for_forwarding("active")
    assert forward() == ""  # an open frontend: nothing was checked, nothing is lent
    reset = CALLER_TOKEN.set("caller-token")
    try:
        assert forward() == "caller-token"  # never the cluster's own: no caller gains its rights
    finally:
        CALLER_TOKEN.reset(reset)
    reset = CALLER_TOKEN.set("")  # accepted here on its client certificate: no token to pass on
    try:
        assert forward() == "cluster-token"
    finally:
        CALLER_TOKEN.reset(reset)
    assert creds.for_own_calls("active")() == "cluster-token"
