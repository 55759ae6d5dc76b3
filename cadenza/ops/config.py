"""The server's YAML config, shaped like the anchors' ``development.yaml`` (DESIGN §10).

Only what this server acts on is modelled strictly (persistence on SQLite, the frontend's address,
the cluster name, namespace defaults); a typo there is an error naming the key and the file. Sections
that belong to later work (kafka, archival, dynamic config, ...) are accepted as they are.

    persistence:
      numHistoryShards: 4
      defaultStore: sqlite-default
      datastores:
        sqlite-default:
          sqlite:
            databaseName: /var/lib/cadenza/cadenza.db    # or ":memory:"
    services:
      frontend:
        rpc: {grpcPort: 7233, bindOnIP: 127.0.0.1}
    clusterMetadata:
      currentClusterName: active
    namespaceDefaults:
      namespaces: [default]
      retentionDays: 3
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cadenza.ops.devserver import ServerSettings


class ConfigError(ValueError):
    """The config file is missing, not YAML, or has a bad key; the message names key and file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SqliteStore(_Strict):
    databaseName: str = ":memory:"


class CassandraStore(_Strict):
    hosts: str | list[str]
    """One host, a comma-separated list, or a YAML list."""
    port: Annotated[int, Field(ge=1, le=65535)] = 9042
    keyspace: str = "cadenza"
    user: str | None = None
    password: str | None = None
    consistency: str = "LOCAL_QUORUM"
    serialConsistency: str = "LOCAL_SERIAL"

    def host_list(self) -> list[str]:
        hosts = self.hosts if isinstance(self.hosts, list) else self.hosts.split(",")
        return [h.strip() for h in hosts if h.strip()]


class ElasticsearchIndices(_Strict):
    visibility: str = "cadenza_visibility_v1"


class ElasticsearchStore(_Strict):
    url: str
    indices: ElasticsearchIndices = ElasticsearchIndices()


class DataStore(_Strict):
    sqlite: SqliteStore | None = None
    cassandra: CassandraStore | None = None
    sql: dict[str, Any] | None = None
    elasticsearch: ElasticsearchStore | None = None

    @model_validator(mode="after")
    def _one_backend(self) -> DataStore:
        chosen = [k for k in ("sqlite", "cassandra", "sql", "elasticsearch") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"a datastore needs exactly one of sqlite, cassandra, sql, elasticsearch (got {chosen})"
            )
        return self


class Persistence(_Strict):
    numHistoryShards: Annotated[int, Field(ge=1, le=16384)] = 4
    """Fixed when the cluster's store is created. 4 suits SQLite (one writer anyway); on Cassandra each
    shard has one Paxos round in flight at a time, so throughput grows with shards: use 64 or more
    (bench/RESULTS.md: 80 workflows/s with 4, ~200 with 64 on one small node)."""
    defaultStore: str
    visibilityStore: str | None = None
    datastores: dict[str, DataStore]

    @model_validator(mode="after")
    def _stores_exist(self) -> Persistence:
        for key in ("defaultStore", "visibilityStore"):
            name = getattr(self, key)
            if name is not None and name not in self.datastores:
                raise ValueError(
                    f"{key} {name!r} is not one of the datastores ({', '.join(self.datastores)})"
                )
        return self


class Rpc(_Strict):
    grpcPort: Annotated[int, Field(ge=0, le=65535)] = 7233
    bindOnIP: str = "127.0.0.1"
    membershipPort: int | None = None


class Service(BaseModel):
    # Metrics and other per-service sections are accepted for later use.
    model_config = ConfigDict(extra="allow")
    rpc: Rpc = Rpc()


class ClusterMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    currentClusterName: str = "active"


class NamespaceDefaults(_Strict):
    namespaces: list[str] = ["default"]
    retentionDays: Annotated[int, Field(ge=0)] = 3


class KafkaCluster(_Strict):
    brokers: list[str]


class Kafka(BaseModel):
    # Topic layout keys (topics, cluster-topics, applications) are accepted as the anchors write them;
    # the visibility topics are created by `cadenza admin setup-schema --store kafka`.
    model_config = ConfigDict(extra="allow")
    clusters: dict[str, KafkaCluster]


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="allow")
    persistence: Persistence
    kafka: Kafka | None = None
    services: dict[str, Service] = {}
    clusterMetadata: ClusterMetadata = ClusterMetadata()
    namespaceDefaults: NamespaceDefaults = NamespaceDefaults()


ROLES = ("frontend", "history", "matching", "worker")


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_config(path: str | Path) -> ServerConfig:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(doc).__name__}")
    try:
        return ServerConfig.model_validate(doc)
    except ValidationError as e:
        problems = [f"{path}: {_where(err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ConfigError("\n".join(problems)) from None


def settings_from_config(config: ServerConfig, path: str | Path) -> ServerSettings:
    """What to run from ``config``: the default store on SQLite or Cassandra; visibility on the
    embedded SQLite store or Elasticsearch, fed through the embedded log or Kafka."""
    p = config.persistence
    store = p.datastores[p.defaultStore]
    where = f"{path}: persistence.datastores.{p.defaultStore}"
    if store.sqlite is None and store.cassandra is None:
        kind = next(k for k in ("sql", "elasticsearch") if getattr(store, k) is not None)
        raise ConfigError(f"{where}: {kind} cannot hold workflows; use sqlite or cassandra")
    visibility_es = None
    if p.visibilityStore is not None:
        vis = p.datastores[p.visibilityStore]
        if vis.elasticsearch is None and vis.sqlite is None:
            raise ConfigError(
                f"{path}: persistence.datastores.{p.visibilityStore}: "
                "visibility needs an elasticsearch or sqlite datastore"
            )
        if vis.elasticsearch is not None:
            visibility_es = {"url": vis.elasticsearch.url, "index": vis.elasticsearch.indices.visibility}
    kafka_brokers = None
    if config.kafka is not None and config.kafka.clusters:
        cluster = config.kafka.clusters.get(config.clusterMetadata.currentClusterName) or next(
            iter(config.kafka.clusters.values())
        )
        kafka_brokers = ",".join(cluster.brokers)
    cassandra = None
    if store.cassandra is not None:
        c = store.cassandra
        cassandra = {
            "hosts": c.host_list(),
            "port": c.port,
            "keyspace": c.keyspace,
            "user": c.user,
            "password": c.password,
            "consistency": c.consistency,
            "serial_consistency": c.serialConsistency,
        }
    frontend = config.services.get("frontend", Service())
    return ServerSettings(
        ip=frontend.rpc.bindOnIP,
        port=frontend.rpc.grpcPort,
        db_filename=store.sqlite.databaseName if store.sqlite is not None else ":memory:",
        cassandra=cassandra,
        visibility_es=visibility_es,
        kafka_brokers=kafka_brokers,
        num_shards=p.numHistoryShards,
        namespaces=tuple(config.namespaceDefaults.namespaces),
        cluster_name=config.clusterMetadata.currentClusterName,
        retention_days=config.namespaceDefaults.retentionDays,
    )
