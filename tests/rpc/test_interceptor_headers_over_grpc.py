"""The interceptor hook scenarios again over gRPC: every header a hook sets (a client's start,
signal, query and update; a workflow's signals to other runs) crosses the wire, Avro-encoded, to
the inbound hook on the other side, and every client hook runs in front of a real RPC."""

from __future__ import annotations

import pytest
from sdk.e2e_semantics import test_interceptor_hooks as hooks

from .conftest import run_in_grpc_env

test_every_workflow_hook_is_called_and_headers_cross_to_the_other_side = (
    hooks.test_every_workflow_hook_is_called_and_headers_cross_to_the_other_side
)
test_every_client_hook_is_called_with_what_the_caller_gave = (
    hooks.test_every_client_hook_is_called_with_what_the_caller_gave
)


@pytest.fixture(autouse=True)
def _over_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "run_in_env", run_in_grpc_env)
