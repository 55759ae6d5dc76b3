"""``global.authorization`` in the server config: read strictly, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from cadenza.engine.auth.config import AuthorizationSettings, parse_duration
from cadenza.ops.config import ConfigError, load_config, settings_from_config

BASE = {
    "persistence": {
        "defaultStore": "db",
        "datastores": {"db": {"sqlite": {"databaseName": ":memory:"}}},
    }
}


def write(tmp_path: Path, authorization: object) -> Path:
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump({**BASE, "global": {"authorization": authorization}}))
    return path


def test_the_block_becomes_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "jwtKeyProvider": {"keySourceURIs": ["file:///etc/cadenza/jwks.json"], "refreshInterval": "5m"},
            "permissionsClaimName": "roles",
            "authorizer": "default",
            "claimMapper": "default",
            "audience": "cadenza",
            "tlsSubjectPermissions": {"billing-worker": ["billing:worker"]},
            "tokenCacheTTL": "30s",
        },
    )
    settings = settings_from_config(load_config(path), path)
    assert settings.authorization == AuthorizationSettings(
        key_source_uris=("file:///etc/cadenza/jwks.json",),
        refresh_interval_s=300.0,
        permissions_claim="roles",
        audience="cadenza",
        tls_subject_permissions={"billing-worker": ("billing:worker",)},
        token_cache_ttl_s=30.0,
    )


def test_without_the_block_the_server_is_open(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert settings_from_config(load_config(path), path).authorization is None
    noop = write(tmp_path, {"authorizer": "noop"})
    settings = settings_from_config(load_config(noop), noop).authorization
    assert settings is not None and settings.open


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            {"jwtKeyProvider": {"keySourceURIs": ["file:///k.json"]}, "permissionClaimName": "p"},
            "global.authorization.permissionClaimName: Extra inputs are not permitted",
        ),
        (
            {"jwtKeyProvider": {"keySourceURI": ["file:///k.json"]}},
            "global.authorization.jwtKeyProvider.keySourceURI: Extra inputs are not permitted",
        ),
        ({"jwtKeyProvider": {"keySourceURIs": []}}, "no caller could be authenticated"),
        (
            {"jwtKeyProvider": {"keySourceURIs": ["ftp://idp/k.json"]}},
            "global.authorization.jwtKeyProvider.keySourceURIs: 'ftp://idp/k.json': unsupported scheme 'ftp'",
        ),
        (
            {"jwtKeyProvider": {"keySourceURIs": ["k.json"], "refreshInterval": "soon"}},
            "global.authorization.jwtKeyProvider.refreshInterval: 'soon' is not a duration",
        ),
        (
            {"jwtKeyProvider": {"keySourceURIs": ["k.json"]}, "tokenCacheTTL": "0s"},
            "global.authorization.tokenCacheTTL: '0s' must be positive",
        ),
        (
            {"tlsSubjectPermissions": {"w": ["billing:boss"]}},
            "global.authorization.tlsSubjectPermissions: w: permission 'billing:boss' names unknown role",
        ),
        ({"jwtKeyProvider": {"keySourceURIs": ["k.json"]}, "authorizer": "mine"}, "use default, noop or"),
    ],
)
def test_a_bad_block_is_an_error_naming_the_key(tmp_path: Path, block: object, message: str) -> None:
    path = write(tmp_path, block)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)


def test_durations() -> None:
    assert [parse_duration(v) for v in ("1m", "30s", "500ms", "2h", 15, "90")] == [60, 30, 0.5, 7200, 15, 90]
    with pytest.raises(ValueError, match="must be positive"):
        parse_duration(-1)


def test_a_clusters_auth_token_file_reaches_the_engine_and_must_exist(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")

    def config(token_file: Path) -> Path:
        path = tmp_path / "server.yaml"
        info = {
            "active": {"initialFailoverVersion": 1, "rpcAddress": "127.0.0.1:7233"},
            "standby": {
                "initialFailoverVersion": 2,
                "rpcAddress": "127.0.0.1:7333",
                "authTokenFile": str(token_file),
            },
        }
        meta = {"enableGlobalNamespace": True, "failoverVersionIncrement": 10, "masterClusterName": "active"}
        path.write_text(
            yaml.safe_dump(
                {
                    **BASE,
                    "clusterMetadata": {**meta, "currentClusterName": "active", "clusterInformation": info},
                }
            )
        )
        return path

    path = config(token)
    settings = settings_from_config(load_config(path), path)
    assert settings.cluster_metadata is not None
    assert settings.cluster_metadata.clusters["standby"].auth_token_file == str(token)
    assert settings.cluster_metadata.clusters["active"].auth_token_file == ""
    with pytest.raises(ConfigError) as e:
        load_config(config(tmp_path / "no-such-token"))
    assert "clusterMetadata.clusterInformation.standby.authTokenFile" in str(e.value)
    assert "no-such-token': no such file" in str(e.value)
