"""``cadenza.envconfig``: client profiles from TOML and the environment, as temporalio reads them."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
from rpc.devserver import DevServer

from cadenza import workflow
from cadenza.client import Client, TLSConfig
from cadenza.envconfig import ClientConfig, ClientConfigProfile, ClientConfigTLS, ConfigError
from cadenza.worker import Worker

PROFILES = textwrap.dedent(
    """
    [profile.default]
    address = "default-address:7233"
    namespace = "default-namespace"

    [profile.custom]
    address = "custom-address:7233"
    namespace = "custom-namespace"
    api_key = "custom-api-key"
    [profile.custom.tls]
    server_name = "custom-server-name"
    [profile.custom.grpc_meta]
    Custom_Header = "custom-value"
    """
)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cadenza.toml"
    path.write_text(PROFILES)
    return path


def test_the_default_profile_becomes_connect_arguments(config_file: Path) -> None:
    profile = ClientConfigProfile.load(config_source=config_file, override_env_vars={})
    assert profile.address == "default-address:7233" and profile.tls is None
    assert profile.to_client_connect_config() == {
        "target_host": "default-address:7233",
        "namespace": "default-namespace",
    }
    # The file's contents instead of its path, as temporalio accepts them.
    assert ClientConfigProfile.load(config_source=PROFILES, override_env_vars={}) == profile


def test_a_named_profile_with_tls_key_and_metadata(config_file: Path) -> None:
    config = ClientConfig.load_client_connect_config(
        "custom", config_file=str(config_file), override_env_vars={}
    )
    assert config["target_host"] == "custom-address:7233" and config["api_key"] == "custom-api-key"
    tls = config["tls"]
    assert isinstance(tls, TLSConfig) and tls.domain == "custom-server-name"
    assert config["rpc_metadata"] == {"custom-header": "custom-value"}  # header names normalized


def test_the_environment_overrides_the_file_under_either_prefix(config_file: Path) -> None:
    env = {
        "TEMPORAL_ADDRESS": "temporal-address:1",
        "CADENZA_ADDRESS": "cadenza-address:2",  # Cadenza's name wins
        "TEMPORAL_NAMESPACE": "env-namespace",
        "TEMPORAL_GRPC_META_CUSTOM_HEADER": "",  # empty: removed
        "CADENZA_GRPC_META_X_TEAM": "video",
        "TEMPORAL_TLS": "false",
    }
    profile = ClientConfigProfile.load("custom", config_source=config_file, override_env_vars=env)
    assert profile.address == "cadenza-address:2" and profile.namespace == "env-namespace"
    assert dict(profile.grpc_meta) == {"x-team": "video"}
    assert profile.to_client_connect_config()["tls"] is False
    untouched = ClientConfigProfile.load(
        "custom", config_source=config_file, override_env_vars=env, disable_env=True
    )
    assert untouched.address == "custom-address:7233"


def test_the_file_is_found_through_the_environment(config_file: Path, tmp_path: Path) -> None:
    env = {"TEMPORAL_CONFIG_FILE": str(config_file), "TEMPORAL_PROFILE": "custom"}
    assert ClientConfig.load_client_connect_config(override_env_vars=env)["namespace"] == "custom-namespace"
    assert set(ClientConfig.load(override_env_vars=env).profiles) == {"default", "custom"}
    # No file in the default place: an empty profile, the environment alone.
    home = {"XDG_CONFIG_HOME": str(tmp_path / "nothing-here"), "CADENZA_ADDRESS": "a:1"}
    assert ClientConfig.load_client_connect_config(override_env_vars=home) == {"target_host": "a:1"}
    # A file the environment names must exist.
    with pytest.raises(ConfigError, match="cannot read"):
        ClientConfig.load_client_connect_config(
            override_env_vars={"CADENZA_CONFIG_FILE": str(tmp_path / "no.toml")}
        )


def test_an_api_key_alone_does_not_turn_tls_on() -> None:
    profile = ClientConfigProfile.load(
        config_source='[profile.default]\napi_key = "k"\n', override_env_vars={}
    )
    assert profile.to_client_connect_config() == {"api_key": "k"}
    on = ClientConfigProfile.load(
        config_source='[profile.default]\napi_key = "k"\n', override_env_vars={"CADENZA_TLS": "true"}
    )
    assert isinstance(on.to_client_connect_config()["tls"], TLSConfig)


def test_certificates_from_paths_or_data(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"ca-pem")
    text = f'[profile.default.tls]\nserver_ca_cert_path = "{ca}"\nclient_cert_data = "cert-pem"\n'
    tls = ClientConfigProfile.load(config_source=text, override_env_vars={}).to_client_connect_config()["tls"]
    assert (
        isinstance(tls, TLSConfig) and tls.server_root_ca_cert == b"ca-pem" and tls.client_cert == b"cert-pem"
    )
    with pytest.raises(ConfigError, match="Cannot specify both client_cert_path and client_cert_data"):
        ClientConfigTLS.from_dict({"client_cert_path": "a", "client_cert_data": "b"})
    with pytest.raises(ConfigError, match="cert data via TEMPORAL_TLS_SERVER_CA_CERT_DATA when cert path"):
        ClientConfigProfile.load(
            config_source=text, override_env_vars={"TEMPORAL_TLS_SERVER_CA_CERT_DATA": "x"}
        )


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("this is not toml", {}, "not valid TOML"),
        ('[profile.default]\naddress = "a"\nunknown = 1\n', {"config_file_strict": True}, "unknown key"),
        ('[profile.default]\naddress = "a"\n', {"profile": "missing"}, "Profile 'missing' not found"),
        ('[profile.default.tls]\ndisabled = "maybe"\n', {}, "is not true or false"),
    ],
)
def test_bad_files_are_errors_naming_the_problem(text: str, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        ClientConfigProfile.load(config_source=text, override_env_vars={}, **kwargs)


def test_unknown_keys_are_dropped_unless_strict() -> None:
    text = '[profile.default]\naddress = "a:1"\nunknown = 1\n'
    assert ClientConfigProfile.load(config_source=text, override_env_vars={}).address == "a:1"
    with pytest.raises(ConfigError, match="Cannot disable both"):
        ClientConfigProfile.load(disable_file=True, disable_env=True)


def test_profiles_round_trip_through_dicts(config_file: Path) -> None:
    config = ClientConfig.load(config_source=config_file, override_env_vars={})
    assert ClientConfig.from_dict(config.to_dict()) == config


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"hello {name}"


def test_a_sample_connects_with_its_profile(tmp_path: Path) -> None:
    """As temporalio's samples do: load the profile, set a default address, connect."""
    server = DevServer(["--headless"]).start()
    try:
        path = tmp_path / "cadenza.toml"
        path.write_text(
            f'[profile.dev]\naddress = "{server.address}"\n[profile.dev.grpc_meta]\nx-team = "video"\n'
        )

        async def scenario() -> str:
            config = ClientConfig.load_client_connect_config(
                override_env_vars={"CADENZA_CONFIG_FILE": str(path), "CADENZA_PROFILE": "dev"}
            )
            config.setdefault("target_host", "localhost:7233")
            client = await Client.connect(**config)
            async with Worker(client, task_queue="envconfig", workflows=[Hello]):
                return await client.execute_workflow(
                    Hello.run, "ada", id="envconfig-1", task_queue="envconfig"
                )

        assert asyncio.run(scenario()) == "hello ada"
    finally:
        assert server.stop() == 0
