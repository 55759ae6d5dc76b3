"""Client settings from a TOML profile file and the environment (temporalio's ``envconfig``);
see ``cadenza.sdk.envconfig``."""

from cadenza.sdk.envconfig import (
    ClientConfig,
    ClientConfigProfile,
    ClientConfigTLS,
    ClientConnectConfig,
    ConfigError,
    DataSource,
)

__all__ = [
    "ClientConfig",
    "ClientConfigProfile",
    "ClientConfigTLS",
    "ClientConnectConfig",
    "ConfigError",
    "DataSource",
]
