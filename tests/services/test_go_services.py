"""The Go-built dev services without Go: building (with a stand-in `go`), caching, failing with the
log tail; the default set; Prometheus's targets file; Jaeger's generated config."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from click.testing import CliRunner

from cadenza.ops.devservices import gobuild
from cadenza.ops.devservices import manager as manager_mod
from cadenza.ops.devservices.cli import services as services_cli
from cadenza.ops.devservices.manager import ServiceManager
from cadenza.ops.devservices.observability import set_scrape_targets, write_targets
from cadenza.ops.devservices.resolve import ResolveError
from cadenza.ops.devservices.services import DEFAULT_SERVICES, SERVICES, Jaeger, Prometheus

TOOL = gobuild.GoTool("demo", "example.com/demo/cmd/demo", "v1.2.3")


def _fake_go(tmp_path: Path, *, fail_build: bool = False) -> Path:
    """A `go` that logs its arguments and, for `build -o OUT`, writes OUT."""
    calls = tmp_path / "go-calls.txt"
    script = tmp_path / "go"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'if [ "$1" = build ]; then\n'
        + ('  echo "compile: undefined: frobnicate" >&2; exit 2\n' if fail_build else "")
        + '  while [ "$1" != -o ]; do shift; done; mkdir -p "$(dirname "$2")"; echo bin > "$2"\n'
        "fi\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_build_once_then_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENZA_GO", str(_fake_go(tmp_path)))
    home = tmp_path / "home"
    dist = gobuild.build("demo", TOOL, home=home)
    assert (dist / "bin" / "demo").read_text() == "bin\n"
    assert (dist / "go.mod").read_text().startswith("module cadenza.local/devservices/demo")
    calls = (tmp_path / "go-calls.txt").read_text().splitlines()
    assert calls[0] == "get -tool example.com/demo/cmd/demo@v1.2.3"
    assert calls[1].startswith("build ") and calls[1].endswith(" example.com/demo/cmd/demo")
    assert gobuild.is_built("demo", TOOL, home)
    assert gobuild.build("demo", TOOL, home=home) == dist
    assert len((tmp_path / "go-calls.txt").read_text().splitlines()) == 2  # no Go the second time
    tagged = gobuild.GoTool("demo", TOOL.package, TOOL.version, tags=("remove_all_sd",))
    assert gobuild.dist_dir("demo", tagged, home) != dist


def test_failed_build_names_the_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENZA_GO", str(_fake_go(tmp_path, fail_build=True)))
    with pytest.raises(ResolveError) as info:
        gobuild.build("demo", TOOL, home=tmp_path / "home")
    assert "go build failed" in str(info.value)
    assert "undefined: frobnicate" in str(info.value)
    assert not gobuild.is_built("demo", TOOL, tmp_path / "home")


def test_default_set_and_running_extras(tmp_path: Path) -> None:
    assert DEFAULT_SERVICES == ("kafka", "cassandra", "elasticsearch")
    assert {"jaeger", "prometheus"} <= set(SERVICES)
    mgr = ServiceManager(home=tmp_path, progress=lambda _m: None)
    assert mgr.names() == list(DEFAULT_SERVICES)
    mgr.pid_file("jaeger").parent.mkdir(parents=True)
    mgr.pid_file("jaeger").write_text("{}")
    assert mgr.names(running_too=True) == [*DEFAULT_SERVICES, "jaeger"]
    assert mgr.names() == list(DEFAULT_SERVICES)


def test_up_with_adds_to_the_default_set(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def fake_up(self: ServiceManager, names: list[str], **_: object) -> list[object]:
        asked.append(list(names))
        return []

    monkeypatch.setattr(manager_mod.ServiceManager, "up", fake_up)
    runner = CliRunner()
    assert runner.invoke(services_cli, ["up", "--with", "jaeger,prometheus"]).exit_code == 0
    assert runner.invoke(services_cli, ["up", "jaeger"]).exit_code == 0
    bad = runner.invoke(services_cli, ["up", "--with", "grafana"])
    assert bad.exit_code != 0 and "unknown service 'grafana'" in bad.output
    assert asked == [[*DEFAULT_SERVICES, "jaeger", "prometheus"], ["jaeger"]]


def test_prometheus_config_and_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADENZA_PROMETHEUS_TARGETS", "127.0.0.1:9464")
    run_dir = tmp_path / "run" / "prometheus"
    run_dir.mkdir(parents=True)
    command = Prometheus().prepare(tmp_path / "dist", run_dir)
    assert command[0] == str(tmp_path / "dist" / "bin" / "prometheus")
    assert "--web.listen-address=127.0.0.1:19090" in command
    config = yaml.safe_load((run_dir / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["file_sd_configs"][0]["files"] == [str(run_dir / "targets.json")]
    assert json.loads((run_dir / "targets.json").read_text()) == [
        {"targets": ["127.0.0.1:9464"], "labels": {}}
    ]
    set_scrape_targets(["127.0.0.1:1", "127.0.0.1:2"], home=tmp_path)
    assert json.loads((run_dir / "targets.json").read_text())[0]["targets"] == ["127.0.0.1:1", "127.0.0.1:2"]
    write_targets(run_dir / "targets.json", [])
    assert json.loads((run_dir / "targets.json").read_text()) == []
    with pytest.raises(RuntimeError, match="not running"):
        set_scrape_targets([], home=tmp_path / "elsewhere")


def test_jaeger_config_uses_its_ports(tmp_path: Path) -> None:
    jaeger = Jaeger()
    command = jaeger.prepare(tmp_path / "dist", tmp_path)
    assert command[1:] == ["--config", str(tmp_path / "config.yaml")]
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "127.0.0.1:14317"
    assert protocols["http"]["endpoint"] == "127.0.0.1:14318"
    assert config["extensions"]["jaeger_query"]["http"]["endpoint"] == "127.0.0.1:19686"
    assert jaeger.otlp_grpc_endpoint == "http://127.0.0.1:14317"
    assert set(jaeger.ports) == {19686, 14317, 14318, 19685}
    assert os.path.basename(command[0]) == "jaeger"
