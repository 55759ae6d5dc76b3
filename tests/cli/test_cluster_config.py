"""The server config's ``clusterMetadata`` and ``kafka`` blocks, validated together, and
`cadenza admin setup-schema --store kafka --config` creating every topic they lay out."""

from __future__ import annotations

import asyncio
import importlib.resources
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadenza.engine.bus import EmbeddedBus
from cadenza.ops.commands.admin import admin
from cadenza.ops.config import EXAMPLE_CONFIGS, ConfigError, ServerConfig, load_config, settings_from_config
from cadenza.replication.cluster import ClusterInformation, ClusterMetadata

PERSISTENCE = """
persistence:
  defaultStore: db
  datastores: {db: {sqlite: {databaseName: ":memory:"}}}
"""

THREE_CLUSTERS = (
    PERSISTENCE
    + """
clusterMetadata:
  enableGlobalNamespace: true
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: standby
  clusterInformation:
    active: {enabled: true, initialFailoverVersion: 1, rpcName: frontend, rpcAddress: "127.0.0.1:7233"}
    standby: {enabled: true, initialFailoverVersion: 2, rpcAddress: "127.0.0.1:7333"}
    other: {enabled: false, initialFailoverVersion: 3, rpcAddress: "127.0.0.1:7433"}
kafka:
  clusters: {test: {brokers: ["127.0.0.1:19092"]}}
  topics:
    active: {cluster: test, partitions: 4}
    active-dlq: {cluster: test}
    standby: {cluster: test, partitions: 4}
    standby-dlq: {cluster: test}
    other: {cluster: test, partitions: 4}
    other-dlq: {cluster: test}
    cadenza-visibility: {cluster: test, partitions: 2}
    cadenza-visibility-dlq: {cluster: test}
  cluster-topics:
    active: {topic: active, dlq-topic: active-dlq}
    standby: {topic: standby, dlq-topic: standby-dlq}
    other: {topic: other, dlq-topic: other-dlq}
  applications:
    visibility: {topic: cadenza-visibility, dlq-topic: cadenza-visibility-dlq}
"""
)


def _write(tmp_path: Path, text: str, name: str = "dev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).splitlines()


def test_three_clusters_load_into_the_engine_cluster_metadata(tmp_path: Path) -> None:
    path = _write(tmp_path, THREE_CLUSTERS)
    settings = settings_from_config(load_config(path), path)
    assert settings.cluster_metadata == ClusterMetadata(
        current_cluster_name="standby",
        clusters={
            "active": ClusterInformation("active", 1, rpc_name="frontend", rpc_address="127.0.0.1:7233"),
            "standby": ClusterInformation("standby", 2, rpc_address="127.0.0.1:7333"),
            "other": ClusterInformation("other", 3, enabled=False, rpc_address="127.0.0.1:7433"),
        },
        failover_version_increment=10,
        master_cluster_name="active",
        enable_global_namespace=True,
    )
    assert settings.cluster_name == "standby"
    assert settings.cluster_metadata.cluster_for_version(12) == "standby"
    topology = settings.kafka_topology
    assert topology is not None and topology.replication_topics("other").dlq_topic == "other-dlq"
    assert settings.kafka_brokers == "127.0.0.1:19092"


def test_a_config_without_cluster_information_is_one_cluster_as_before(tmp_path: Path) -> None:
    path = _write(
        tmp_path, PERSISTENCE + "clusterMetadata: {currentClusterName: dc-a}\nkafka: {clusters: {}}\n"
    )
    settings = settings_from_config(load_config(path), path)
    assert settings.cluster_name == "dc-a"
    assert settings.cluster_metadata == ClusterMetadata.single("dc-a")
    # An empty kafka block means the embedded log, as it always did.
    assert settings.kafka_topology is None and settings.kafka_brokers is None
    bare = _write(tmp_path, PERSISTENCE, "bare.yaml")
    assert settings_from_config(load_config(bare), bare).cluster_metadata == ClusterMetadata.single()


def test_three_mistakes_are_reported_at_once_with_their_keys_and_the_file(tmp_path: Path) -> None:
    text = (
        THREE_CLUSTERS.replace("initialFailoverVersion: 2", "initialFailoverVersion: 12")
        .replace("  masterClusterName: active\n", "  masterClusterName: active\n  failoverIncrement: 10\n")
        .replace("    standby: {topic: standby, dlq-topic: standby-dlq}\n", "")
    )
    path = _write(tmp_path, text)
    assert _problems(path) == [
        f"{path}: clusterMetadata.failoverIncrement: unknown key; expected one of: enableGlobalNamespace, "
        "failoverVersionIncrement, masterClusterName, currentClusterName, clusterInformation",
        f"{path}: clusterMetadata.clusterInformation.standby.initialFailoverVersion: 12 must be at least 0 "
        "and below failoverVersionIncrement 10",
        f"{path}: kafka.cluster-topics.standby: missing; cluster 'standby' is enabled under "
        "clusterMetadata.clusterInformation and needs its replication topic and DLQ",
    ]


def test_cross_checks_run_even_when_another_section_is_wrong(tmp_path: Path) -> None:
    text = (
        THREE_CLUSTERS.replace("defaultStore: db", "defaultStore: nope")
        .replace("currentClusterName: standby", "currentClusterName: standbi")
        .replace("initialFailoverVersion: 3", "initialFailoverVersion: 1")
        .replace("active-dlq: {cluster: test}", "active-dlq: {cluster: prod}")
    )
    problems = "\n".join(_problems(_write(tmp_path, text)))
    assert "persistence.defaultStore: 'nope' is not one of the datastores" in problems
    assert "clusterMetadata.currentClusterName: 'standbi' is not listed under clusterInformation" in problems
    assert "clusterMetadata.clusterInformation.other.initialFailoverVersion: 1 is also 'active''s" in problems
    assert "kafka.topics.active-dlq.cluster: unknown cluster 'prod'; known: test" in problems
    # A disabled cluster needs no replication topic; the kafka block's own references still resolve.
    disabled = THREE_CLUSTERS.replace("    other: {topic: other, dlq-topic: other-dlq}\n", "")
    load_config(_write(tmp_path, disabled, "disabled.yaml"))


def test_a_single_cluster_on_kafka_needs_no_replication_topics(tmp_path: Path) -> None:
    text = PERSISTENCE + (
        "kafka:\n"
        "  clusters: {test: {brokers: ['b:1']}}\n"
        "  topics: {v: {cluster: test}, v-dlq: {cluster: test}}\n"
        "  applications: {visibility: {topic: v, dlq-topic: v-dlq}}\n"
    )
    path = _write(tmp_path, text)
    assert settings_from_config(load_config(path), path).kafka_brokers == "b:1"


def test_settings_from_a_config_built_in_code_are_checked_too() -> None:
    config = ServerConfig.model_validate(
        {
            "persistence": {"defaultStore": "db", "datastores": {"db": {"sqlite": {}}}},
            "clusterMetadata": {
                "currentClusterName": "b",
                "clusterInformation": {"a": {"initialFailoverVersion": 0}},
            },
        }
    )
    with pytest.raises(ConfigError, match=r"x\.yaml: clusterMetadata\.currentClusterName: 'b' is not listed"):
        settings_from_config(config, "x.yaml")


def test_the_shipped_example_configs_load() -> None:
    names = {"development_active", "development_standby", "development_other", "development_kafka_active"}
    shipped = importlib.resources.files("cadenza.ops") / "config"
    assert {p.name for p in shipped.iterdir() if p.name.endswith(".yaml")} >= {f"{n}.yaml" for n in names}
    loaded = {n: settings_from_config(load_config(EXAMPLE_CONFIGS / f"{n}.yaml"), n) for n in names}
    embedded = [loaded[n] for n in ("development_active", "development_standby", "development_other")]
    assert [s.cluster_name for s in embedded] == ["active", "standby", "other"]
    assert [s.port for s in embedded] == [7233, 7333, 7433]
    assert len({s.db_filename for s in embedded}) == 3
    assert all(s.kafka_topology is None for s in embedded)
    # The three agree on the clusters and their versions; only the current one differs.
    first, *rest = [s.cluster_metadata for s in embedded]
    assert first is not None and first.current_cluster_name == "active"
    assert all(m is not None and m.clusters == first.clusters for m in rest)
    on_kafka = loaded["development_kafka_active"]
    assert on_kafka.cassandra is not None and on_kafka.cassandra["keyspace"] == "cadenza_active"
    assert on_kafka.kafka_topology is not None
    assert set(on_kafka.kafka_topology.cluster_topics) == {"active", "standby", "other"}


def _embedded_topics(path: Path) -> dict[str, int]:
    async def listed() -> dict[str, int]:
        bus = EmbeddedBus(path)
        try:
            return await bus.list_topics()
        finally:
            await bus.close()

    return asyncio.run(listed())


def test_setup_schema_creates_every_topic_of_the_config_on_the_embedded_log(tmp_path: Path) -> None:
    config = _write(tmp_path, THREE_CLUSTERS)
    bus = tmp_path / "bus.db"
    args = ["setup-schema", "--store", "kafka", "--config", str(config), "--bus", f"sqlite:///{bus}"]
    result = CliRunner().invoke(admin, args)
    assert result.exit_code == 0, result.output
    assert (
        "test (sqlite:///" in result.output
        and "created active, active-dlq, cadenza-visibility" in result.output
    )
    assert _embedded_topics(bus) == {
        "active": 4,
        "active-dlq": 1,
        "standby": 4,
        "standby-dlq": 1,
        "other": 4,
        "other-dlq": 1,
        "cadenza-visibility": 2,
        "cadenza-visibility-dlq": 1,
    }
    again = CliRunner().invoke(admin, args)
    assert again.exit_code == 0 and "created nothing (all exist)" in again.output


def test_setup_schema_on_a_kafka_block_without_topics_creates_the_visibility_topics(tmp_path: Path) -> None:
    config = _write(tmp_path, PERSISTENCE + "kafka: {clusters: {main: {brokers: ['127.0.0.1:19092']}}}\n")
    bus = tmp_path / "bus.db"
    args = ["setup-schema", "--store", "kafka", "--config", str(config), "--bus", f"sqlite:///{bus}"]
    result = CliRunner().invoke(admin, args)
    assert result.exit_code == 0 and result.output.startswith("main (sqlite:///"), result.output
    assert _embedded_topics(bus) == {"cadenza-visibility": 4, "cadenza-visibility-dlq": 1}


def test_setup_schema_with_clusters_and_without_a_config(tmp_path: Path) -> None:
    bus = tmp_path / "bus.db"
    args = ["setup-schema", "--store", "kafka", "--cluster", "a", "--cluster", "b", "--partitions", "3"]
    result = CliRunner().invoke(admin, [*args, "--bus", f"sqlite:///{bus}"])
    assert result.exit_code == 0, result.output
    assert _embedded_topics(bus) == {
        "a": 3,
        "a-dlq": 1,
        "b": 3,
        "b-dlq": 1,
        "cadenza-visibility": 3,
        "cadenza-visibility-dlq": 1,
    }


def test_setup_schema_refuses_a_bad_config_or_one_without_kafka(tmp_path: Path) -> None:
    bad = _write(tmp_path, THREE_CLUSTERS.replace("initialFailoverVersion: 2", "initialFailoverVersion: 1"))
    bus = f"sqlite:///{tmp_path / 'bus.db'}"
    result = CliRunner().invoke(
        admin, ["setup-schema", "--store", "kafka", "--config", str(bad), "--bus", bus]
    )
    assert result.exit_code == 1
    assert (
        f"{bad}: clusterMetadata.clusterInformation.standby.initialFailoverVersion: 1 is also"
        in result.output
    )
    embedded = str(EXAMPLE_CONFIGS / "development_active.yaml")
    result = CliRunner().invoke(
        admin, ["setup-schema", "--store", "kafka", "--config", embedded, "--bus", bus]
    )
    assert result.exit_code == 1 and "has no kafka block" in result.output
    mixed = ["setup-schema", "--store", "kafka", "--config", embedded, "--cluster", "a"]
    assert CliRunner().invoke(admin, mixed).exit_code == 1


@pytest.mark.kafka
def test_setup_schema_creates_the_config_topics_on_kafka(tmp_path: Path, kafka_bootstrap: str) -> None:
    from cadenza.engine.bus.kafka import KafkaBus

    # Unique names: the broker outlives the test and other tests use the conventional ones.
    suffix = uuid.uuid4().hex[:8]
    names = ["active", "standby", "other", "cadenza-visibility"]
    text = THREE_CLUSTERS.replace("127.0.0.1:19092", kafka_bootstrap)
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(f"{name}-dlq", f"{name}-dlq-{suffix}")
        text = text.replace(f"{{topic: {name},", f"{{topic: {name}-{suffix},")
        text = text.replace(f"    {name}: {{cluster", f"    {name}-{suffix}: {{cluster")
    config = _write(tmp_path, text)
    expected = {f"{n}-{suffix}" for n in names} | {f"{n}-dlq-{suffix}" for n in names}
    load_config(config)
    result = CliRunner().invoke(admin, ["setup-schema", "--store", "kafka", "--config", str(config)])
    assert result.exit_code == 0, result.output

    async def check() -> dict[str, int]:
        bus = KafkaBus(kafka_bootstrap)
        try:
            topics = await bus.list_topics()
            await bus.delete_topics(sorted(expected))
            return {name: count for name, count in topics.items() if name in expected}
        finally:
            await bus.close()

    found = asyncio.run(check())
    assert set(found) == expected
    assert found[f"standby-{suffix}"] == 4 and found[f"standby-dlq-{suffix}"] == 1
