"""Where the web UI is served: ``start-dev --ui-port/--headless``, the config's ``ui`` block, a
port already taken, and payloads shown as the data converter decodes them."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza.ops.cli import _register, cli
from cadenza.ops.commands.server import _ui
from cadenza.ops.config import ConfigError, load_config, settings_from_config
from cadenza.sdk._local import local_service
from cadenza.ui import UIServer, UISettings
from cadenza.ui.encoding import decode_payload, readable

_register()

BASE = """
persistence:
  numHistoryShards: 2
  defaultStore: sqlite-default
  datastores:
    sqlite-default:
      sqlite: {databaseName: ":memory:"}
"""


def test_dev_server_serves_the_ui_at_the_grpc_port_plus_1000_unless_told_otherwise() -> None:
    assert _ui("127.0.0.1", 7233, None, False) == UISettings("127.0.0.1", 8233, required=False)
    assert _ui("0.0.0.0", 7333, None, False) == UISettings("0.0.0.0", 8333, required=False)
    assert _ui("127.0.0.1", 0, None, False) == UISettings("127.0.0.1", 0, required=False)
    assert _ui("127.0.0.1", 7233, 9000, False) == UISettings("127.0.0.1", 9000, required=True)
    assert _ui("127.0.0.1", 7233, 0, False) is None
    assert _ui("127.0.0.1", 7233, None, True) is None
    assert _ui("127.0.0.1", 65000, None, False) == UISettings("127.0.0.1", 0, required=False)


def test_start_dev_help_names_the_ui_options_and_refuses_a_port_out_of_range() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["server", "start-dev", "--help"]).output
    assert "--ui-port" in out and "--headless" in out
    result = runner.invoke(cli, ["server", "start-dev", "--ui-port", "70000"])
    assert result.exit_code == 2 and "70000" in result.output


def test_config_ui_block_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(BASE + "ui: {port: 9233, bindOnIP: 0.0.0.0}\n")
    settings = settings_from_config(load_config(path), path)
    assert settings.ui == UISettings("0.0.0.0", 9233, required=True)
    path.write_text(BASE)
    assert settings_from_config(load_config(path), path).ui is None
    path.write_text(BASE + "ui: {prot: 9233}\n")
    with pytest.raises(ConfigError, match=r"ui\.prot"):
        load_config(path)
    path.write_text(BASE + "ui: {port: 0}\n")
    with pytest.raises(ConfigError, match=r"ui\.port"):
        load_config(path)


def test_a_taken_port_fails_only_when_the_ui_was_asked_for() -> None:
    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            service = local_service(object())
            optional = UIServer(service, UISettings("127.0.0.1", port, required=False))  # type: ignore[arg-type]
            assert await optional.start() == 0
            await optional.stop()
            required = UIServer(service, UISettings("127.0.0.1", port, required=True))  # type: ignore[arg-type]
            with pytest.raises(OSError, match=f"cannot serve the web UI on 127.0.0.1:{port}"):
                await required.start()

    asyncio.run(main())


def test_payloads_show_json_as_json_and_anything_else_as_base64_with_its_encoding() -> None:
    assert decode_payload({"metadata": {"encoding": b"json/plain"}, "data": b'{"a": [1, 2]}'}) == {
        "encoding": "json/plain",
        "json": {"a": [1, 2]},
    }
    assert decode_payload({"metadata": {"encoding": b"binary/null"}, "data": b""}) == {
        "encoding": "binary/null",
        "json": None,
    }
    assert decode_payload({"metadata": {"encoding": b"binary/plain"}, "data": b"\x00\xff"}) == {
        "encoding": "binary/plain",
        "base64": "AP8=",
    }
    # A payload that says JSON but is not is shown as its bytes, not as an error.
    assert decode_payload({"metadata": {"encoding": b"json/plain"}, "data": b"{oops"}) == {
        "encoding": "json/plain",
        "base64": "e29vcHM=",
    }
    assert readable(
        {"token": b"\x01", "input": [{"metadata": {"encoding": b"binary/plain"}, "data": b"x"}]}
    ) == {
        "token": {"base64": "AQ=="},
        "input": [{"encoding": "binary/plain", "base64": "eA=="}],
    }
