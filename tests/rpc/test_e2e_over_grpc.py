"""The whole end-to-end suite again, with client and workers talking to the server over gRPC.

The scenarios are the ones in ``tests/e2e``, collected here a second time (the same function
objects, so nothing is copied and nothing drifts). Each e2e module calls ``run_in_env`` through its
own global, which the autouse fixture below points at ``run_in_grpc_env`` for the duration of a
test collected from this module only. The subprocess durability test is left out: it runs its own
server process; its gRPC counterpart is ``test_faults.py``.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from e2e import test_bad_input, test_determinism, test_timeouts, test_workflows

from .conftest import run_in_grpc_env

MODULES: tuple[ModuleType, ...] = (test_workflows, test_bad_input, test_timeouts, test_determinism)

for _module in MODULES:
    for _name, _obj in vars(_module).items():
        if _name.startswith("test_") and callable(_obj):
            assert _name not in globals(), f"two e2e tests are called {_name}"
            globals()[_name] = _obj


@pytest.fixture(autouse=True)
def _over_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in MODULES:
        monkeypatch.setattr(module, "run_in_env", run_in_grpc_env)
