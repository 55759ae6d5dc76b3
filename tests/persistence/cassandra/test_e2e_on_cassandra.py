"""The end-to-end SDK scenarios of ``tests/e2e`` with the engine on Cassandra.

Every e2e test calls ``run_in_env(scenario, ...)`` through its module's global; the fixture below
swaps that global for one that passes ``stores=`` (Cassandra stores on this session's keyspace) to
``WorkflowEnvironment.start_local``, and the tests themselves are re-exported here unchanged, so
pytest runs each scenario a second time, on Cassandra, with its own marks and fixtures.

Before each test the partitions of the engine's shards are deleted (one partition tombstone each),
so every scenario starts on empty shards, as it does on a fresh SQLite database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from e2e import test_bad_input, test_determinism, test_timeouts, test_workflows

from .support import Keyspace, cassandra_keyspace  # noqa: F401  (fixture)

pytestmark = pytest.mark.cassandra

NUM_SHARDS = 4  # WorkflowEnvironment.start_local's default
MODULES: tuple[ModuleType, ...] = (test_workflows, test_timeouts, test_determinism, test_bad_input)
_ENV_RUNNERS = {"run_in_env", "_expect_timeout"}


def _scenario_tests(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The module's tests that run a scenario in an environment (directly or via its helper)."""
    return {
        name: fn
        for name, fn in vars(module).items()
        if name.startswith("test_") and callable(fn) and _ENV_RUNNERS & set(fn.__code__.co_names)
    }


for _module in MODULES:
    for _name, _fn in _scenario_tests(_module).items():
        globals()[_name] = _fn


@pytest.fixture(autouse=True)
def _engine_on_cassandra(
    cassandra_keyspace: Keyspace,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    ks = cassandra_keyspace
    shards = ", ".join(str(i) for i in range(NUM_SHARDS))
    ks.session.session.execute(f"DELETE FROM {ks.name}.executions WHERE shard_id IN ({shards})")
    for module in MODULES:
        original = module.run_in_env

        def on_cassandra(scenario: Any, *, _original: Any = original, **kwargs: Any) -> Any:
            kwargs.setdefault("stores", ks.stores())
            return _original(scenario, **kwargs)

        monkeypatch.setattr(module, "run_in_env", on_cassandra)
    yield
    # Proof the scenario ran on Cassandra: the engine acquired every shard in this keyspace.
    owned = ks.session.session.execute(
        f"SELECT shard_id FROM {ks.name}.executions WHERE shard_id IN ({shards}) AND type = 0"
    )
    assert len(list(owned)) == NUM_SHARDS
