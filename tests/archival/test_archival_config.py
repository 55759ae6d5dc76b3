"""The server config's archival sections: acted on, and refused with the key and file named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.ops.config import ConfigError, load_config, settings_from_config

BASE = """
persistence:
  numHistoryShards: 1
  defaultStore: db
  datastores:
    db:
      sqlite: {databaseName: ":memory:"}
"""

GOOD = (
    BASE
    + """
archival:
  history:
    state: enabled
    enableRead: true
    provider: {filestore: {fileMode: "0640", dirMode: 0750}}
  visibility:
    state: enabled
    enableRead: true
    provider: {filestore: {fileMode: "0666", dirMode: "0766"}}
namespaceDefaults:
  archival:
    history: {state: enabled, URI: "file:///var/archive/history"}
    visibility: {state: enabled, URI: "file:///var/archive/visibility"}
"""
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(text)
    return path


def test_the_archival_sections_become_the_servers_settings(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    a = settings_from_config(load_config(path), path).archival
    assert a.history.enabled and a.history.enable_read
    assert (a.history.file_mode, a.history.dir_mode) == (0o640, 0o750)  # 0750 unquoted is YAML octal
    assert (a.visibility.file_mode, a.visibility.dir_mode) == (0o666, 0o766)
    assert a.default_history_state == "enabled"
    assert a.default_visibility_uri == "file:///var/archive/visibility"


@pytest.mark.parametrize(
    "bad, key, words",
    [
        ('URI: "file:///var/archive/history"', "", ""),  # the good one, as a control
        ('URI: "s3://bucket/history"', "namespaceDefaults.archival.history.URI", "'s3://bucket/history'"),
        ('URI: "file:///var/archive/history", bogus: 1', "namespaceDefaults.archival.history.bogus", ""),
    ],
)
def test_a_bad_uri_or_unknown_key_is_one_message_naming_the_key(
    tmp_path: Path, bad: str, key: str, words: str
) -> None:
    path = write(tmp_path, GOOD.replace('URI: "file:///var/archive/history"', bad))
    if not key:
        load_config(path)
        return
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = str(e.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: {key}: ")
    assert words in lines[0]


def test_a_bad_mode_or_a_missing_provider_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('fileMode: "0640"', 'fileMode: "rw-r"'))
    with pytest.raises(ConfigError, match=r"archival\.history\.provider\.filestore\.fileMode: .*'rw-r'"):
        load_config(path)
    path = write(tmp_path, BASE + "archival: {visibility: {state: enabled}}\n")
    with pytest.raises(ConfigError, match=r"archival\.visibility: .*provider\.filestore: required"):
        load_config(path)
