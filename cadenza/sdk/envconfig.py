"""Client settings from a TOML profile file and the environment, as temporalio's ``envconfig``.

Published samples connect with::

    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", "localhost:7233")
    client = await Client.connect(**config)

The file is the one named by ``CADENZA_CONFIG_FILE`` (or ``TEMPORAL_CONFIG_FILE``), else
``$XDG_CONFIG_HOME/cadenza/cadenza.toml`` (``~/.config/cadenza/cadenza.toml``); a missing default
file is no error. It holds profiles::

    [profile.default]
    address = "localhost:7233"
    namespace = "default"
    api_key = "..."                     # sent as `authorization: Bearer ...`
    [profile.default.tls]               # present: TLS on (unless `disabled = true`)
    server_name = "frontend.example"
    server_ca_cert_path = "/etc/ca.pem" # or server_ca_cert_data; client_cert_*, client_key_* alike
    [profile.default.grpc_meta]
    x-team = "video"                    # keys are lower-cased, `_` becomes `-`

The profile is ``CADENZA_PROFILE`` (or ``TEMPORAL_PROFILE``), else ``default``; asking for a
profile the file lacks is an error, except ``default``, which is then empty. The environment then
overrides the profile, under either prefix (``CADENZA_`` wins over ``TEMPORAL_``): ``ADDRESS``,
``NAMESPACE``, ``API_KEY``, ``TLS`` (true/false), ``TLS_SERVER_NAME``,
``TLS_SERVER_CA_CERT_PATH|DATA``, ``TLS_CLIENT_CERT_PATH|DATA``, ``TLS_CLIENT_KEY_PATH|DATA``, and
``GRPC_META_<NAME>`` (an empty value removes the header).

One difference from temporalio: an API key alone does not turn TLS on. Temporal's cloud requires
TLS with API keys; a Cadenza server checks bearer tokens with or without it, and its development
server serves plain gRPC. Turn TLS on with a ``tls`` table or ``CADENZA_TLS=true``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypedDict

from cadenza.sdk.client import TLSConfig

DataSource: TypeAlias = Path | str | bytes
"""A path to read, or the contents themselves (``str`` or ``bytes``)."""

PREFIXES = ("CADENZA_", "TEMPORAL_")
"""Environment variable prefixes, in the order they are consulted (the first set wins)."""

DEFAULT_PROFILE = "default"

_PROFILE_KEYS = frozenset({"address", "namespace", "api_key", "tls", "grpc_meta"})
_TLS_KEYS = frozenset(
    {
        "disabled",
        "server_name",
        "server_ca_cert_path",
        "server_ca_cert_data",
        "client_cert_path",
        "client_cert_data",
        "client_key_path",
        "client_key_data",
    }
)
_TLS_SOURCES = (
    ("server_ca_cert", "server_root_ca_cert", "TLS_SERVER_CA_CERT"),
    ("client_cert", "client_cert", "TLS_CLIENT_CERT"),
    ("client_key", "client_private_key", "TLS_CLIENT_KEY"),
)


class ConfigError(RuntimeError):
    """A config file or environment variable that cannot be used; the message names it."""


class ClientConnectConfig(TypedDict, total=False):
    """Keyword arguments of ``Client.connect`` that a profile can set."""

    target_host: str
    namespace: str
    api_key: str
    tls: bool | TLSConfig
    rpc_metadata: Mapping[str, str]


def _read_source(source: DataSource | None) -> bytes | None:
    if source is None:
        return None
    if isinstance(source, Path):
        try:
            return source.expanduser().read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read {source}: {e.strerror or e}") from None
    return source.encode() if isinstance(source, str) else bytes(source)


@dataclass(frozen=True)
class ClientConfigTLS:
    """The ``tls`` table of a profile."""

    disabled: bool | None = None
    """True: TLS off even though the table is there; None: not said."""
    server_name: str | None = None
    """The name the server's certificate must carry, if not the address's host."""
    server_root_ca_cert: DataSource | None = None
    client_cert: DataSource | None = None
    client_private_key: DataSource | None = None

    def to_connect_tls_config(self) -> bool | TLSConfig:
        if self.disabled:
            return False
        return TLSConfig(
            server_root_ca_cert=_read_source(self.server_root_ca_cert),
            client_cert=_read_source(self.client_cert),
            client_private_key=_read_source(self.client_private_key),
            domain=self.server_name,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.disabled is not None:
            d["disabled"] = self.disabled
        if self.server_name is not None:
            d["server_name"] = self.server_name
        for key, attr, _ in _TLS_SOURCES:
            value = getattr(self, attr)
            if isinstance(value, Path):
                d[f"{key}_path"] = str(value)
            elif value is not None:
                d[f"{key}_data"] = value.decode() if isinstance(value, bytes) else value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, *, where: str = "tls") -> ClientConfigTLS | None:
        if not d:
            return None
        _check_keys(d, _TLS_KEYS, where)
        sources: dict[str, DataSource | None] = {}
        for key, attr, _ in _TLS_SOURCES:
            path, data = d.get(f"{key}_path"), d.get(f"{key}_data")
            if path is not None and data is not None:
                raise ConfigError(f"{where}: Cannot specify both {key}_path and {key}_data")
            sources[attr] = Path(path) if path is not None else data
        return cls(
            disabled=_bool(d["disabled"], f"{where}.disabled") if "disabled" in d else None,
            server_name=d.get("server_name"),
            **sources,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ClientConfigProfile:
    """One profile: what it says of the address, namespace, API key, TLS and gRPC metadata."""

    address: str | None = None
    namespace: str | None = None
    api_key: str | None = None
    tls: ClientConfigTLS | None = None
    grpc_meta: Mapping[str, str] = field(default_factory=dict)

    def to_client_connect_config(self) -> ClientConnectConfig:
        """The ``Client.connect`` keyword arguments of what the profile sets."""
        config: ClientConnectConfig = {}
        if self.address:
            config["target_host"] = self.address
        if self.namespace is not None:
            config["namespace"] = self.namespace
        if self.api_key is not None:
            config["api_key"] = self.api_key
        if self.tls is not None:
            config["tls"] = self.tls.to_connect_tls_config()
        if self.grpc_meta:
            config["rpc_metadata"] = dict(self.grpc_meta)
        return config

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in ("address", "namespace", "api_key"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.tls is not None and (tls := self.tls.to_dict()):
            d["tls"] = tls
        if self.grpc_meta:
            d["grpc_meta"] = dict(self.grpc_meta)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "profile") -> ClientConfigProfile:
        _check_keys(d, _PROFILE_KEYS, where)
        meta = d.get("grpc_meta") or {}
        if not isinstance(meta, Mapping):
            raise ConfigError(f"{where}.grpc_meta: a table of header = value, not {type(meta).__name__}")
        return cls(
            address=d.get("address"),
            namespace=d.get("namespace"),
            api_key=d.get("api_key"),
            tls=ClientConfigTLS.from_dict(d.get("tls"), where=f"{where}.tls"),
            grpc_meta={_header(k): str(v) for k, v in meta.items()},
        )

    @staticmethod
    def load(
        profile: str | None = None,
        *,
        config_source: DataSource | None = None,
        disable_file: bool = False,
        disable_env: bool = False,
        config_file_strict: bool = False,
        override_env_vars: Mapping[str, str] | None = None,
    ) -> ClientConfigProfile:
        """One profile of the file (``config_source``: a path, or the file's contents), with the
        environment's overrides applied (``override_env_vars`` in place of ``os.environ``)."""
        if disable_file and disable_env:
            raise ConfigError("Cannot disable both the config file and the environment")
        env: Mapping[str, str] = (
            {} if disable_env else (override_env_vars if override_env_vars is not None else os.environ)
        )
        name = profile or _env(env, "PROFILE") or DEFAULT_PROFILE
        raw: Mapping[str, Any] = {}
        if config_source is not None or not disable_file:
            profiles = _load_profiles(config_source, env, strict=config_file_strict)
            if name in profiles:
                raw = profiles[name]
            elif name != DEFAULT_PROFILE:
                raise ConfigError(f"Profile '{name}' not found in the client config file")
        loaded = ClientConfigProfile.from_dict(raw, where=f"profile.{name}") if raw else ClientConfigProfile()
        return loaded if disable_env else _with_env(loaded, env)


@dataclass
class ClientConfig:
    """Every profile of a client config file (no environment overrides)."""

    profiles: Mapping[str, ClientConfigProfile]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: p.to_dict() for name, p in self.profiles.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, Any]]) -> ClientConfig:
        return cls(profiles={k: ClientConfigProfile.from_dict(v, where=f"profile.{k}") for k, v in d.items()})

    @staticmethod
    def load(
        *,
        config_source: DataSource | None = None,
        config_file_strict: bool = False,
        override_env_vars: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        """Every profile of the file; the environment only says where the file is."""
        env = override_env_vars if override_env_vars is not None else os.environ
        return ClientConfig.from_dict(_load_profiles(config_source, env, strict=config_file_strict))

    @staticmethod
    def load_client_connect_config(
        profile: str | None = None,
        *,
        config_file: str | None = None,
        disable_file: bool = False,
        disable_env: bool = False,
        config_file_strict: bool = False,
        override_env_vars: Mapping[str, str] | None = None,
    ) -> ClientConnectConfig:
        """``ClientConfigProfile.load(...).to_client_connect_config()``: keyword arguments for
        ``Client.connect``."""
        source = Path(config_file) if config_file and not disable_file else None
        return ClientConfigProfile.load(
            profile,
            config_source=source,
            disable_file=disable_file,
            disable_env=disable_env,
            config_file_strict=config_file_strict,
            override_env_vars=override_env_vars,
        ).to_client_connect_config()


def default_config_file(env: Mapping[str, str]) -> Path:
    named = _env(env, "CONFIG_FILE")
    if named:
        return Path(named).expanduser()
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cadenza" / "cadenza.toml"


def _load_profiles(
    source: DataSource | None, env: Mapping[str, str], *, strict: bool
) -> dict[str, Mapping[str, Any]]:
    named_by_env = source is None and _env(env, "CONFIG_FILE") is not None
    if source is None:
        source = default_config_file(env)
        if not named_by_env and not source.exists():
            return {}
    where = str(source) if isinstance(source, Path) else "client config"
    text = _read_source(source)
    assert text is not None
    try:
        doc = tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from None
    if strict:
        _check_keys(doc, frozenset({"profile"}), where)
    profiles = doc.get("profile", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{where}: profile must be a table of [profile.<name>] tables")
    out: dict[str, Mapping[str, Any]] = {}
    for name, raw in profiles.items():
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: profile.{name} must be a table")
        if not strict:  # unknown keys are dropped unless strict (temporalio's default)
            raw = {k: v for k, v in raw.items() if k in _PROFILE_KEYS}
            if isinstance(raw.get("tls"), dict):
                raw["tls"] = {k: v for k, v in raw["tls"].items() if k in _TLS_KEYS}
        out[name] = raw
    return out


def _with_env(p: ClientConfigProfile, env: Mapping[str, str]) -> ClientConfigProfile:
    address = _env(env, "ADDRESS")
    namespace = _env(env, "NAMESPACE")
    api_key = _env(env, "API_KEY")
    tls = p.tls
    tls_flag = _env(env, "TLS")
    tls_changes: dict[str, Any] = {}
    if tls_flag is not None:
        tls_changes["disabled"] = not _bool(tls_flag, _env_name(env, "TLS"))
    server_name = _env(env, "TLS_SERVER_NAME")
    if server_name is not None:
        tls_changes["server_name"] = server_name
    for _, attr, suffix in _TLS_SOURCES:
        path, data = _env(env, f"{suffix}_PATH"), _env(env, f"{suffix}_DATA")
        path_var, data_var = _env_name(env, f"{suffix}_PATH"), _env_name(env, f"{suffix}_DATA")
        current = getattr(tls, attr) if tls is not None else None
        if path is not None and data is not None:
            raise ConfigError(f"Cannot specify both {path_var} and {data_var}")
        if data is not None and isinstance(current, Path):
            raise ConfigError(f"Cannot specify cert data via {data_var} when cert path is already specified")
        if path is not None and current is not None and not isinstance(current, Path):
            raise ConfigError(f"Cannot specify cert path via {path_var} when cert data is already specified")
        if path is not None:
            tls_changes[attr] = Path(path)
        elif data is not None:
            tls_changes[attr] = data
    if tls_changes:
        base = tls.__dict__ if tls is not None else {}
        tls = ClientConfigTLS(**{**base, **tls_changes})
    meta = dict(p.grpc_meta)
    for prefix in reversed(PREFIXES):  # CADENZA_ applied last, so it wins
        start = f"{prefix}GRPC_META_"
        for key, value in env.items():
            if key.startswith(start) and len(key) > len(start):
                header = _header(key[len(start) :])
                if value:
                    meta[header] = value
                else:
                    meta.pop(header, None)
    return ClientConfigProfile(
        address=address if address is not None else p.address,
        namespace=namespace if namespace is not None else p.namespace,
        api_key=api_key if api_key is not None else p.api_key,
        tls=tls,
        grpc_meta=meta,
    )


def _env(env: Mapping[str, str], suffix: str) -> str | None:
    for prefix in PREFIXES:
        value = env.get(prefix + suffix)
        if value is not None:
            return value
    return None


def _env_name(env: Mapping[str, str], suffix: str) -> str:
    return next((p + suffix for p in PREFIXES if p + suffix in env), PREFIXES[0] + suffix)


def _header(key: str) -> str:
    return key.strip().lower().replace("_", "-")


def _bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: {value!r} is not true or false")


def _check_keys(d: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
