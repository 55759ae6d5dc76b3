"""``global.shutdown.drainTimeout`` and ``--drain-timeout``: a duration that acts on the graceful
stop, or a clear error naming the key (or flag), the value and the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza.ops.cli import _register, cli
from cadenza.ops.config import ConfigError, load_config, settings_from_config
from cadenza.ops.devserver import DEFAULT_DRAIN_TIMEOUT_S

BASE = """
persistence:
  defaultStore: db
  datastores:
    db:
      sqlite:
        databaseName: ":memory:"
"""


def _config(tmp_path: Path, shutdown: str) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(BASE + shutdown)
    return path


@pytest.mark.parametrize(("value", "seconds"), [("2s", 2.0), ("500ms", 0.5), ("1m", 60.0), ("30", 30.0)])
def test_the_drain_timeout_of_the_config_reaches_the_server(
    tmp_path: Path, value: str, seconds: float
) -> None:
    path = _config(tmp_path, f"global:\n  shutdown:\n    drainTimeout: {value}\n")
    assert settings_from_config(load_config(path), path).drain_timeout_s == seconds


def test_without_it_the_default_applies(tmp_path: Path) -> None:
    path = _config(tmp_path, "")
    assert settings_from_config(load_config(path), path).drain_timeout_s == DEFAULT_DRAIN_TIMEOUT_S


@pytest.mark.parametrize(
    ("shutdown", "expected"),
    [
        ("drainTimeout: soon", "global.shutdown.drainTimeout: 'soon' is not a duration"),
        ("drainTimeout: 0s", "global.shutdown.drainTimeout: '0s' must be positive"),
        ("drainTimeout: 2h", "global.shutdown.drainTimeout: '2h' is longer than the limit of 3600 s"),
        ("grace: 5s", "global.shutdown.grace"),
    ],
)
def test_a_bad_drain_timeout_is_one_error_naming_the_key(
    tmp_path: Path, shutdown: str, expected: str
) -> None:
    path = _config(tmp_path, f"global:\n  shutdown:\n    {shutdown}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = str(e.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: "), lines
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize("command", [["start-dev"], ["start", "--config", "unused.yaml"]])
def test_a_bad_drain_timeout_flag_is_refused_before_anything_starts(command: list[str]) -> None:
    _register()
    result = CliRunner().invoke(cli, ["server", *command, "--drain-timeout", "2h"])
    assert result.exit_code == 2
    assert "--drain-timeout" in result.output and "longer than the limit of 3600 s" in result.output
