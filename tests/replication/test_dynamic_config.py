"""Dynamic config: re-read while the server runs, per-namespace values, bad files keep the last
good values; it switches forwarding and limits a namespace's request rate."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from cadenza.exceptions import RPCError
from cadenza.ops.dynamic_config import DynamicConfig, DynamicConfigError, parse
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

from .clusters import running_clusters
from .workflows import Waiter


def _write(path: Path, text: str) -> None:
    # A distinct size each time too: a rewrite within the same mtime tick is still seen.
    path.write_text(text + "#" * (len(text) % 7) + "\n")


def test_values_by_constraint_first_match_wins(tmp_path: Path) -> None:
    f = tmp_path / "dc.yaml"
    _write(
        f,
        """
frontend.namespaceRPS:
  - value: 5
    constraints: {namespace: video}
  - value: 100
""",
    )
    dc = DynamicConfig(f)
    assert dc.get("frontend.namespaceRPS", 0, namespace="video") == 5
    assert dc.get("frontend.namespaceRPS", 0, namespace="reports") == 100
    assert dc.get("system.enableNamespaceNotActiveAutoForwarding", True, namespace="video") is True


def test_a_bad_file_keeps_the_last_good_values_and_says_why_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "dc.yaml"
    _write(f, "frontend.namespaceRPS:\n  - value: 7\n")
    dc = DynamicConfig(f)
    _write(f, "frontend.namespaceRPS:\n  - value: seven\nfrontend.nameSpaceRPS:\n  - value: 1\n")
    with caplog.at_level(logging.ERROR, logger="cadenza.dynamicconfig"):
        assert dc.reload() is False
        assert dc.reload() is False  # unchanged: not reported again
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1
    assert "frontend.namespaceRPS[0].value: expected int, got 'seven'" in errors[0]
    assert "frontend.nameSpaceRPS: unknown key" in errors[0] and str(f) in errors[0]
    assert dc.get("frontend.namespaceRPS", 0) == 7
    _write(f, "frontend.namespaceRPS:\n  - value: 9\n")
    assert dc.reload() is True and dc.get("frontend.namespaceRPS", 0) == 9
    with pytest.raises(DynamicConfigError, match="not valid YAML"):
        parse("a: [", "x.yaml")


def test_namespace_rps_refuses_the_excess_naming_the_namespace(tmp_path: Path) -> None:
    f = tmp_path / "dc.yaml"
    _write(f, "frontend.namespaceRPS:\n  - value: 3\n    constraints: {namespace: default}\n")

    async def main() -> None:
        env = await WorkflowEnvironment.start_local()
        try:
            env.host.frontend.dynamic_config = DynamicConfig(f)
            env.client.service.max_overload_wait = 0  # type: ignore[attr-defined]  # see the refusal itself
            for i in range(3):
                await env.client.start_workflow(Waiter.run, id=f"rl-{i}", task_queue="q")
            with pytest.raises(RPCError) as e:
                await env.client.start_workflow(Waiter.run, id="rl-3", task_queue="q")
            assert e.value.status == "RESOURCE_EXHAUSTED"
            assert "namespace 'default' is over its rate of 3 requests/s" in str(e.value)
            await asyncio.sleep(0.5)  # the bucket refills at the rate
            await env.client.start_workflow(Waiter.run, id="rl-4", task_queue="q")
        finally:
            await env.shutdown()

    asyncio.run(main())


def test_forwarding_is_switched_per_namespace_while_running(tmp_path: Path) -> None:
    f = tmp_path / "dc.yaml"
    _write(
        f,
        "system.enableNamespaceNotActiveAutoForwarding:\n"
        "  - value: false\n"
        "    constraints: {namespace: video}\n",
    )

    async def main() -> None:
        async with running_clusters() as c:
            dc = DynamicConfig(f)
            for host in c.hosts.values():
                host.dynamic_config = dc
            await c.register_global("video")
            standby = c.client("standby", "video")
            async with Worker(c.client("active", "video"), task_queue="q", workflows=[Waiter]):
                with pytest.raises(RPCError, match="not active in cluster 'standby'"):
                    await standby.start_workflow(Waiter.run, id="dc-1", task_queue="q")
                _write(f, "system.enableNamespaceNotActiveAutoForwarding:\n  - value: true\n")
                assert dc.reload()
                handle = await standby.start_workflow(Waiter.run, id="dc-1", task_queue="q")
                await handle.signal(Waiter.note, "finish")
                assert await handle.result() == ["finish"]

    asyncio.run(main())


def test_the_server_config_names_the_file_and_its_poll_interval(tmp_path: Path) -> None:
    from cadenza.ops.config import ConfigError, load_config, settings_from_config

    base = (
        "persistence:\n  defaultStore: s\n  datastores:\n    s:\n      sqlite: {databaseName: ':memory:'}\n"
    )
    good = tmp_path / "good.yaml"
    good.write_text(base + "dynamicConfigClient:\n  filepath: dc.yaml\n  pollInterval: 5s\n")
    settings = settings_from_config(load_config(good), good)
    assert (settings.dynamic_config_file, settings.dynamic_config_poll_s) == ("dc.yaml", 5.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "dynamicConfigClient:\n  filepath: dc.yaml\n  pollInterval: soon\n")
    with pytest.raises(ConfigError, match="dynamicConfigClient"):
        load_config(bad)
