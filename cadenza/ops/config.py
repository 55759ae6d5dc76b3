"""The server's YAML config, shaped like the anchors' ``development.yaml`` (DESIGN §10).

Every key either acts or is refused: an unknown key, a wrong type, a reference to a store or cluster
that is not declared, or a key of the anchors' config this server does not support yet is an error
naming the file and the key (``<file>: <key>: <what is wrong>``), every problem of the file at once.
``docs/configuration.md`` has the table of every key and what it does today.

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
      enableGlobalNamespace: true
      failoverVersionIncrement: 10
      masterClusterName: active
      currentClusterName: active
      clusterInformation:
        active: {enabled: true, initialFailoverVersion: 1, rpcAddress: "127.0.0.1:7233"}
        standby: {enabled: true, initialFailoverVersion: 2, rpcAddress: "127.0.0.1:7333"}
    kafka:                                               # optional: the embedded log otherwise
      clusters: {test: {brokers: ["127.0.0.1:19092"]}}
      topics: {active: {cluster: test}, active-dlq: {cluster: test}, ...}
      cluster-topics:
        active: {topic: active, dlq-topic: active-dlq}
        standby: {topic: standby, dlq-topic: standby-dlq}
      applications:
        visibility: {topic: cadenza-visibility, dlq-topic: cadenza-visibility-dlq}
    namespaceDefaults:
      namespaces: [default]
      retentionDays: 3                                   # closed runs are deleted after this (0: kept)
      archival:                                          # what a namespace registered without its own gets
        history: {state: enabled, URI: "file:///var/lib/cadenza/archival/history"}
        visibility: {state: enabled, URI: "file:///var/lib/cadenza/archival/visibility"}
    archival:                                            # optional: archive runs retention deletes
      history:
        state: enabled
        enableRead: true
        provider: {filestore: {fileMode: "0666", dirMode: "0766"}}
      visibility:
        state: enabled
        enableRead: true
        provider: {filestore: {fileMode: "0666", dirMode: "0766"}}
    global:                                              # optional: Prometheus metrics
      metrics:
        tags: {type: frontend}
        prometheus: {timerType: histogram, listenAddress: "127.0.0.1:8000"}
      authorization:                                     # optional: see cadenza.engine.auth.config
        jwtKeyProvider: {keySourceURIs: ["file:///etc/cadenza/jwks.json"], refreshInterval: 1m}
        permissionsClaimName: permissions
    tracing:                                             # optional: OpenTelemetry traces over OTLP
      otlp: {endpoint: "http://127.0.0.1:4317"}
    ui: {port: 8233, bindOnIP: 127.0.0.1}                # optional: serve the web UI

Without ``clusterInformation`` the config describes one cluster named ``currentClusterName`` with
initial failover version 0: no replication. The example configs shipped in ``cadenza/ops/config/``
(see ``EXAMPLE_CONFIGS``) run three clusters on one machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cadenza.engine.archival import ArchivalError, ArchivalSettings, ProviderSettings, archive_dir
from cadenza.engine.archival.settings import parse_mode
from cadenza.engine.auth.config import authorization_problems, authorization_settings, parse_duration
from cadenza.engine.bus.topology import KafkaTopology
from cadenza.engine.membership import MembershipSettings
from cadenza.engine.tracing import TracingSettings, tracing_settings
from cadenza.metrics.config import metrics_problems, metrics_settings
from cadenza.metrics.core import split_address
from cadenza.ops.config_sections import ROLES as ROLES  # re-exported for `server start --services`
from cadenza.ops.config_sections import (
    ElasticsearchStore,
    GlobalConfig,
    PublicClient,
    Service,
    Services,
    Shutdown,
    TracingConfig,
    drain_timeout_s,
    error_lines,
    not_supported,
)
from cadenza.ops.devserver import ServerSettings
from cadenza.replication.cluster import (
    DEFAULT_FAILOVER_VERSION_INCREMENT,
    ClusterInformation,
    ClusterMetadata,
)

EXAMPLE_CONFIGS = Path(__file__).with_name("config")
"""The example configs: one node embedded (``single_node_sqlite.yaml``) or on Cassandra,
Elasticsearch and Kafka (``single_node_production.yaml``); three clusters on one machine embedded
(``development_{active,standby,other}.yaml``) or on the production backends
(``development_kafka_{active,standby,other}.yaml``). The directory has no ``__init__.py`` on purpose:
it would shadow this module."""


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


class DataStore(_Strict):
    sqlite: SqliteStore | None = None
    cassandra: CassandraStore | None = None
    elasticsearch: ElasticsearchStore | None = None

    @model_validator(mode="after")
    def _one_backend(self) -> DataStore:
        chosen = [k for k in ("sqlite", "cassandra", "elasticsearch") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"a datastore needs exactly one of sqlite, cassandra, elasticsearch (got {chosen})"
            )
        return self

    def kind(self) -> str:
        return next(k for k in ("sqlite", "cassandra", "elasticsearch") if getattr(self, k) is not None)


class Persistence(_Strict):
    numHistoryShards: Annotated[int, Field(ge=1, le=16384)] = 4
    """Fixed when the cluster's store is created. 4 suits SQLite (one writer anyway); on Cassandra each
    shard has one Paxos round in flight at a time, so throughput grows with shards: use 64 or more
    (bench/RESULTS.md: 80 workflows/s with 4, ~200 with 64 on one small node)."""
    defaultStore: str
    """Workflows, history, shards, namespaces, task queues: a sqlite or cassandra datastore."""
    visibilityStore: str | None = None
    """List and count: a sqlite or elasticsearch datastore (default: SQLite beside the default
    store's file, or in memory)."""
    advancedVisibilityStore: str | None = None
    """The anchors' name for the Elasticsearch visibility store; give it or visibilityStore."""
    datastores: dict[str, DataStore]

    def visibility_store_name(self) -> str | None:
        return self.advancedVisibilityStore or self.visibilityStore

    def problems(self) -> list[str]:
        """Each as ``persistence.<key>: <what is wrong>``: a store named but not declared, a store of
        the wrong kind for its use, a datastore nothing uses."""
        out = []
        uses = {
            "defaultStore": ("sqlite", "cassandra"),
            "visibilityStore": ("sqlite", "elasticsearch"),
            "advancedVisibilityStore": ("elasticsearch",),
        }
        for key, kinds in uses.items():
            name = getattr(self, key)
            if name is None:
                continue
            if name not in self.datastores:
                known = ", ".join(self.datastores) or "none"
                out.append(f"persistence.{key}: {name!r} is not one of the datastores ({known})")
            elif self.datastores[name].kind() not in kinds:
                kind = self.datastores[name].kind()
                hint = ""
                if key == "visibilityStore" and kind == "cassandra":
                    hint = (
                        "; visibility on Cassandra is not supported: use advancedVisibilityStore "
                        "(elasticsearch)"
                    )
                out.append(
                    f"persistence.{key}: datastore {name!r} is {kind}; {key} takes {' or '.join(kinds)}{hint}"
                )
        if self.visibilityStore is not None and self.advancedVisibilityStore is not None:
            out.append(
                "persistence.advancedVisibilityStore: give visibilityStore or advancedVisibilityStore, not "
                "both (one visibility store serves list and count)"
            )
        used = {self.defaultStore, self.visibilityStore, self.advancedVisibilityStore}
        if out:
            return out  # a wrong reference is likely meant for the unused store: one message is enough
        for name in self.datastores:
            if name not in used:
                out.append(
                    f"persistence.datastores.{name}: not used by defaultStore, visibilityStore or "
                    "advancedVisibilityStore"
                )
        return out


class ClusterInformationConfig(_Strict):
    enabled: bool = True
    initialFailoverVersion: int
    rpcName: Literal["cadenza-frontend", "frontend"] = "cadenza-frontend"
    """The frontend's service name, fixed in this server; the anchors' two spellings are accepted."""
    rpcAddress: str = ""
    """``host:port`` of the cluster's frontend."""
    authTokenFile: str = ""
    """A file holding the bearer token this cluster presents to that one for its own calls
    (``cadenza.replication.credentials``); re-read when it changes."""

    @field_validator("rpcAddress")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            split_address(value)
        return value

    @field_validator("authTokenFile")
    @classmethod
    def _token_file(cls, value: str) -> str:
        if value and not Path(value).expanduser().is_file():
            raise ValueError(f"{value!r}: no such file")
        return str(Path(value).expanduser()) if value else value


class ClusterMetadataConfig(_Strict):
    """``clusterMetadata``: the config's spelling of ``cadenza.replication.cluster.ClusterMetadata``.

    The consistency rules (unique initial versions below the increment, current and master cluster
    listed) live on the engine value, so they are stated once; ``problems`` maps its messages to the
    config's keys."""

    enableGlobalNamespace: bool = False
    # Range checks are left to ClusterMetadata.problems() so that they are reported with the rest.
    failoverVersionIncrement: int = DEFAULT_FAILOVER_VERSION_INCREMENT
    masterClusterName: str = ""
    currentClusterName: str = "active"
    clusterInformation: dict[str, ClusterInformationConfig] | None = None

    def cluster_names(self) -> dict[str, bool]:
        """Every cluster with whether it is enabled (the implicit single cluster when none is listed)."""
        if self.clusterInformation is None:
            return {self.currentClusterName: True}
        return {name: info.enabled for name, info in self.clusterInformation.items()}

    def to_engine(self) -> ClusterMetadata:
        """The engine value; raises ``ClusterMetadataError`` when ``problems()`` is not empty."""
        return ClusterMetadata(**self._engine_fields())

    def problems(self) -> list[str]:
        """Every inconsistency, each as ``clusterMetadata.<key>: <what is wrong>``."""
        implicit = self.clusterInformation is None
        out = []
        for problem in _UncheckedClusterMetadata(**self._engine_fields()).problems():
            head, _, rest = problem.partition(" ")
            key = head.rstrip(":")
            if key.split(".")[0] not in type(self).model_fields:
                out.append(f"clusterMetadata: {problem}")
            elif implicit and key.startswith("clusterInformation."):
                # The implicit cluster's version is 0, so only a bad failoverVersionIncrement can
                # upset it, and that has its own message naming the key the user wrote.
                continue
            else:
                out.append(f"clusterMetadata.{key}: {rest}")
        return out

    def _engine_fields(self) -> dict[str, Any]:
        if self.clusterInformation is None:
            clusters = {self.currentClusterName: ClusterInformation(self.currentClusterName, 0)}
        else:
            clusters = {
                name: ClusterInformation(
                    name,
                    info.initialFailoverVersion,
                    enabled=info.enabled,
                    rpc_name=info.rpcName,
                    rpc_address=info.rpcAddress,
                    auth_token_file=info.authTokenFile,
                )
                for name, info in self.clusterInformation.items()
            }
        return {
            "current_cluster_name": self.currentClusterName,
            "clusters": clusters,
            "failover_version_increment": self.failoverVersionIncrement,
            # As ClusterMetadata.single(): without a master named, the current cluster is the master.
            "master_cluster_name": self.masterClusterName or self.currentClusterName,
            "enable_global_namespace": self.enableGlobalNamespace,
        }


class _UncheckedClusterMetadata(ClusterMetadata):
    """``ClusterMetadata`` without the check at construction: the loader wants the list of problems
    (``problems()``), not the exception that joins them into one message."""

    __slots__ = ()

    def __post_init__(self) -> None:
        pass


class Filestore(_Strict):
    fileMode: str = "0666"
    dirMode: str = "0766"

    @field_validator("fileMode", "dirMode", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> str:
        # Unquoted, YAML reads 0666 as the octal number it is: keep it in octal.
        text = f"0{value:o}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
        try:
            parse_mode("mode", text)
        except ArchivalError as e:
            raise ValueError(str(e).removeprefix("mode: ")) from None  # the location names the key
        return text


class ArchivalProvider(_Strict):
    filestore: Filestore | None = None
    """The only provider (``file://`` URIs), as in the anchors' development config."""


class ArchivalKind(_Strict):
    state: Literal["enabled", "disabled"] = "disabled"
    enableRead: bool = False
    provider: ArchivalProvider | None = None

    @model_validator(mode="after")
    def _provider(self) -> ArchivalKind:
        if self.state == "enabled" and (self.provider is None or self.provider.filestore is None):
            raise ValueError(
                "provider.filestore: required when state is enabled (filestore is the only provider)"
            )
        return self

    def to_engine(self) -> ProviderSettings:
        store = self.provider.filestore if self.provider is not None else None
        store = store or Filestore()
        return ProviderSettings(
            enabled=self.state == "enabled",
            enable_read=self.enableRead,
            file_mode=parse_mode("fileMode", store.fileMode),
            dir_mode=parse_mode("dirMode", store.dirMode),
        )


class Archival(_Strict):
    history: ArchivalKind = ArchivalKind()
    visibility: ArchivalKind = ArchivalKind()


class NamespaceArchivalKind(_Strict):
    state: Literal["enabled", "disabled"] = "disabled"
    URI: str = ""

    @field_validator("URI")
    @classmethod
    def _file_uri(cls, value: str) -> str:
        if value:
            try:
                archive_dir("URI", value)
            except ArchivalError as e:
                raise ValueError(str(e).removeprefix("URI: ")) from None
        return value

    @model_validator(mode="after")
    def _uri_when_enabled(self) -> NamespaceArchivalKind:
        if self.state == "enabled" and not self.URI:
            raise ValueError("URI: required when state is enabled (file:///absolute/dir)")
        return self


class NamespaceArchival(_Strict):
    history: NamespaceArchivalKind = NamespaceArchivalKind()
    visibility: NamespaceArchivalKind = NamespaceArchivalKind()


class NamespaceDefaults(_Strict):
    namespaces: list[str] = ["default"]
    retentionDays: Annotated[int, Field(ge=0)] = 3
    archival: NamespaceArchival = NamespaceArchival()


def _no_kafka(block: Any) -> Any:
    """``kafka: {clusters: {}}`` is how a config says "no Kafka" (the embedded log carries
    everything), so it reads as no kafka block rather than failing the topology's checks."""
    if isinstance(block, dict) and set(block) <= {"clusters"} and not block.get("clusters"):
        return None
    return block


class DcRedirectionPolicy(_Strict):
    policy: Literal["noop", "selected-apis-forwarding"] = "selected-apis-forwarding"
    """``selected-apis-forwarding`` (the default): a standby cluster sends start, signal,
    signal-with-start, cancel, terminate, query, reset and describe of a global namespace to its
    active cluster; ``noop``: it refuses them with NamespaceNotActive."""
    toDC: str | None = None
    """Empty or absent only, as the anchors write it: the target is always the namespace's active
    cluster."""

    @field_validator("toDC")
    @classmethod
    def _to_dc(cls, value: str | None) -> str | None:
        if value:
            raise ValueError(
                f"{value!r}: forwarding to a fixed cluster is not supported; requests go to the "
                "namespace's active cluster (leave toDC empty)"
            )
        return value


class DynamicConfigClient(_Strict):
    filepath: str
    """The dynamic config YAML (``cadenza.ops.dynamic_config``), relative to the working directory."""
    pollInterval: str | float = "10s"
    """How often the file is checked for changes: seconds, or ``10s``, ``1m``."""

    def poll_interval_s(self) -> float:
        v = str(self.pollInterval).strip().lower()
        scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(v[-1:], None)
        number = float(v[:-1]) if scale is not None else float(v)
        return number * (scale or 1.0)

    @model_validator(mode="after")
    def _interval(self) -> DynamicConfigClient:
        try:
            seconds = self.poll_interval_s()
        except ValueError:
            raise ValueError(f"pollInterval {self.pollInterval!r} is not a duration such as 10s") from None
        if seconds <= 0:
            raise ValueError(f"pollInterval must be positive (got {self.pollInterval!r})")
        return self


class UIConfig(_Strict):
    """``ui``: serve the web UI from this server, in its event loop (absent: no UI)."""

    port: Annotated[int, Field(ge=1, le=65535)] = 8233
    bindOnIP: str = "127.0.0.1"


class ServerConfig(_Strict):
    persistence: Persistence
    global_: GlobalConfig | None = Field(default=None, alias="global")
    dcRedirectionPolicy: DcRedirectionPolicy = DcRedirectionPolicy()
    dynamicConfigClient: DynamicConfigClient | None = None
    kafka: KafkaTopology | None = None
    services: Services = Services()
    publicClient: PublicClient | None = None
    tracing: TracingConfig | None = None
    clusterMetadata: ClusterMetadataConfig = ClusterMetadataConfig()
    namespaceDefaults: NamespaceDefaults = NamespaceDefaults()
    archival: Archival = Archival()
    ui: UIConfig | None = None

    def archival_settings(self) -> ArchivalSettings:
        a, d = self.archival, self.namespaceDefaults.archival
        return ArchivalSettings(
            history=a.history.to_engine(),
            visibility=a.visibility.to_engine(),
            default_history_state=d.history.state,
            default_history_uri=d.history.URI,
            default_visibility_state=d.visibility.state,
            default_visibility_uri=d.visibility.URI,
        )

    @field_validator("kafka", mode="before")
    @classmethod
    def _empty_kafka(cls, value: Any) -> Any:
        return _no_kafka(value)


def cross_problems(cluster: ClusterMetadataConfig, kafka: KafkaTopology | None) -> list[str]:
    """The checks that span keys: the cluster metadata's consistency, the kafka topology's references,
    and a replication topic for every enabled cluster. Each message starts with its key."""
    out = cluster.problems()
    if kafka is None:
        return out
    out += kafka.problems()
    clusters = cluster.cluster_names()
    # Only a config that lays out replication topics (cluster-topics) for several clusters needs one
    # per cluster; a single cluster, or Kafka used for visibility only, replicates nothing.
    if kafka.cluster_topics and len(clusters) > 1:
        for name, enabled in clusters.items():
            if enabled and name not in kafka.cluster_topics:
                out.append(
                    f"kafka.cluster-topics.{name}: missing; cluster {name!r} is enabled under "
                    "clusterMetadata.clusterInformation and needs its replication topic and DLQ"
                )
    return out


def _sections(doc: dict[str, Any]) -> tuple[ClusterMetadataConfig | None, KafkaTopology | None]:
    """``clusterMetadata`` and ``kafka`` validated on their own, for their cross-checks to run even
    when another part of the file is wrong. Unknown keys of ``clusterMetadata`` are dropped here:
    they are reported already, and the rest can still be checked."""
    cluster: ClusterMetadataConfig | None = None
    raw = doc.get("clusterMetadata", {})
    if isinstance(raw, dict):
        known = {k: v for k, v in raw.items() if k in ClusterMetadataConfig.model_fields}
        info = known.get("clusterInformation")
        if isinstance(info, dict):
            known["clusterInformation"] = {
                name: {k: v for k, v in entry.items() if k in ClusterInformationConfig.model_fields}
                if isinstance(entry, dict)
                else entry
                for name, entry in info.items()
            }
        try:
            cluster = ClusterMetadataConfig.model_validate(known)
        except ValidationError:
            cluster = None
    kafka: KafkaTopology | None = None
    raw_kafka = _no_kafka(doc.get("kafka"))
    if isinstance(raw_kafka, dict):
        try:
            kafka = KafkaTopology.model_validate(raw_kafka)
        except ValidationError:
            kafka = None
    return cluster, kafka


def load_config(path: str | Path) -> ServerConfig:
    """Read and validate ``path``; raises ``ConfigError`` listing every problem, one a line, each as
    ``<file>: <key>: <what is wrong>``."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None
    except RecursionError:
        # PyYAML composes nested collections recursively.
        raise ConfigError(f"{path}: not valid YAML: collections nested too deeply") from None
    except ValueError as e:  # PyYAML lets int()'s refusal of a number of over 4300 digits through
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(doc).__name__}")
    refused, doc = not_supported(doc)
    problems = [f"{path}: {p}" for p in refused]
    config: ServerConfig | None = None
    cluster: ClusterMetadataConfig | None
    kafka: KafkaTopology | None
    try:
        config = ServerConfig.model_validate(doc)
    except ValidationError as e:
        problems += [f"{path}: {line}" for line in error_lines(ServerConfig, doc, e.errors())]
    if config is not None:
        cluster, kafka = config.clusterMetadata, config.kafka
        problems += [f"{path}: {p}" for p in config.persistence.problems() + config.services.problems()]
    else:
        cluster, kafka = _sections(doc)
    if cluster is not None:
        problems += [f"{path}: {p}" for p in cross_problems(cluster, kafka)]
    elif kafka is not None:
        problems += [f"{path}: {p}" for p in kafka.problems()]
    problems += [f"{path}: {p}" for p in metrics_problems(doc)]
    problems += [f"{path}: {p}" for p in authorization_problems(doc)]
    if problems:
        raise ConfigError("\n".join(problems))
    assert config is not None
    return config


def settings_from_config(config: ServerConfig, path: str | Path) -> ServerSettings:
    """What to run from ``config``: the default store on SQLite or Cassandra; visibility on the
    embedded SQLite store or Elasticsearch, fed through the embedded log or Kafka; the cluster
    metadata and kafka topology replication runs on."""
    # load_config has checked these already; a config built in code has not.
    problems = cross_problems(config.clusterMetadata, config.kafka) + config.persistence.problems()
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" for p in problems))
    p = config.persistence
    store = p.datastores[p.defaultStore]
    visibility_es = None
    vis_name = p.visibility_store_name()
    if vis_name is not None and (es := p.datastores[vis_name].elasticsearch) is not None:
        visibility_es = {"url": es.url_text(), "index": es.indices.visibility}
        if es.username is not None and es.password is not None:
            visibility_es |= {"username": es.username, "password": es.password}
    kafka_brokers = None
    if config.kafka is not None:
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
    frontend = config.services.frontend or Service()
    doc = config.model_dump(by_alias=True)
    return ServerSettings(
        ip=frontend.rpc.bind_ip(),
        port=frontend.rpc.grpcPort,
        db_filename=store.sqlite.databaseName if store.sqlite is not None else ":memory:",
        cassandra=cassandra,
        visibility_es=visibility_es,
        kafka_brokers=kafka_brokers,
        num_shards=p.numHistoryShards,
        namespaces=tuple(config.namespaceDefaults.namespaces),
        cluster_name=config.clusterMetadata.currentClusterName,
        cluster_metadata=config.clusterMetadata.to_engine(),
        kafka_topology=config.kafka,
        retention_days=config.namespaceDefaults.retentionDays,
        forwarding=config.dcRedirectionPolicy.policy == "selected-apis-forwarding",
        dynamic_config_file=config.dynamicConfigClient.filepath if config.dynamicConfigClient else None,
        dynamic_config_poll_s=config.dynamicConfigClient.poll_interval_s()
        if config.dynamicConfigClient
        else 10.0,
        metrics=metrics_settings(doc),
        tracing=_tracing(config, path),
        archival=config.archival_settings(),
        authorization=authorization_settings(doc),
        frontend_limits=frontend.limits.to_engine() if frontend.limits is not None else None,
        ui=_ui(config.ui),
        drain_timeout_s=_drain_timeout_s(config),
        membership=_membership(config),
        broadcast_address=_broadcast_address(config),
    )


def _membership(config: ServerConfig) -> MembershipSettings:
    membership = config.global_.membership if config.global_ is not None else None
    if membership is None:
        return MembershipSettings()
    return MembershipSettings(max_join_s=parse_duration(membership.maxJoinDuration))


def _broadcast_address(config: ServerConfig) -> str | None:
    membership = config.global_.membership if config.global_ is not None else None
    return membership.broadcastAddress if membership is not None else None


def _drain_timeout_s(config: ServerConfig) -> float:
    shutdown = config.global_.shutdown if config.global_ is not None else None
    return drain_timeout_s(shutdown.drainTimeout if shutdown is not None else Shutdown().drainTimeout)


def _ui(ui: UIConfig | None) -> Any:
    if ui is None:
        return None
    from cadenza.ui.server import UISettings

    return UISettings(ui.bindOnIP, ui.port, required=True)


def _tracing(config: ServerConfig, path: str | Path) -> TracingSettings | None:
    try:
        return tracing_settings(config.model_dump(by_alias=True))
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
