"""Every key of the server config acts or is refused: the anchors' shape loads, the shipped examples
load, and each bad config in a table is one message naming the file and the key."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from cadenza.engine.bus.topology import KafkaTopology
from cadenza.ops.config import EXAMPLE_CONFIGS, ConfigError, load_config, settings_from_config

ANCHORS = Path(__file__).with_name("anchors_shaped_config.yaml")


def _doc() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(ANCHORS.read_text())


def test_the_anchors_shaped_config_loads_and_acts(tmp_path: Path) -> None:
    settings = settings_from_config(load_config(ANCHORS), ANCHORS)
    assert (settings.ip, settings.port) == ("127.0.0.1", 7233)  # bindOnLocalHost
    assert settings.cassandra is not None and settings.cassandra["user"] == "cadenza"
    assert settings.visibility_es == {
        "url": "http://127.0.0.1:9200",  # url: {scheme, host}
        "index": "cadenza_visibility_v1_dev",
        "username": "elastic",
        "password": "changeme",
    }
    assert settings.kafka_topology is not None
    assert set(settings.kafka_topology.cluster_topics) == {
        "active",
        "standby",
        "other",
    }  # cadenza-cluster-topics
    assert settings.metrics is not None and settings.metrics.listen_address == "127.0.0.1:8000"
    assert settings.metrics.tags == {"cluster": "active"}  # from services.frontend.metrics
    assert settings.forwarding and settings.dynamic_config_poll_s == 10.0


def test_every_shipped_example_loads() -> None:
    shipped = importlib.resources.files("cadenza.ops") / "config"
    names = sorted(p.name for p in shipped.iterdir() if p.name.endswith(".yaml"))
    assert {"single_node_sqlite.yaml", "single_node_production.yaml"} <= set(names)
    assert {f"development_kafka_{c}.yaml" for c in ("active", "standby", "other")} <= set(names)
    for name in names:
        path = EXAMPLE_CONFIGS / name
        settings = settings_from_config(load_config(path), path)
        assert settings.num_shards >= 1, name
    on_kafka = [
        settings_from_config(load_config(EXAMPLE_CONFIGS / f"development_kafka_{c}.yaml"), c)
        for c in ("active", "standby", "other")
    ]
    assert [s.cluster_name for s in on_kafka] == ["active", "standby", "other"]
    assert len({s.visibility_es["index"] for s in on_kafka if s.visibility_es}) == 3
    assert len({s.cassandra["keyspace"] for s in on_kafka if s.cassandra}) == 3
    assert len({s.metrics.listen_address for s in on_kafka if s.metrics}) == 3


def _set(doc: dict, dotted: str, value: object) -> None:  # type: ignore[type-arg]
    *parents, last = dotted.split("/")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()
ES = "persistence/datastores/es-visibility/elasticsearch"
CASS = "persistence/datastores/cass-default/cassandra"

BAD: list[tuple[str, list[tuple[str, object]], str]] = [
    (
        "limits on another role",
        [("services/history/limits", {})],
        "services.history.limits: overload limits apply to the frontend only",
    ),
    ("unknown top-level key", [("tracng", {})], "tracng: unknown key; expected one of: persistence, global"),
    (
        "unknown nested key",
        [(f"{CASS}/keyspaces", "x")],
        "persistence.datastores.cass-default.cassandra.keyspaces: unknown key",
    ),
    (
        "unknown role",
        [("services/histroy", {})],
        "services.histroy: unknown key; expected one of: frontend, history",
    ),
    (
        "wrong type",
        [("persistence/numHistoryShards", "four")],
        "persistence.numHistoryShards: Input should be a valid integer",
    ),
    (
        "out of range",
        [("services/frontend/rpc/grpcPort", 70000)],
        "services.frontend.rpc.grpcPort: Input should be less than or equal to 65535 (got 70000)",
    ),
    (
        "missing store",
        [("persistence/defaultStore", "cass-main")],
        "persistence.defaultStore: 'cass-main' is not one of the datastores",
    ),
    (
        "store of the wrong kind",
        [("persistence/defaultStore", "es-visibility")],
        "persistence.defaultStore: datastore 'es-visibility' is elasticsearch; "
        "defaultStore takes sqlite or cassandra",
    ),
    (
        "unused datastore",
        [("persistence/datastores/spare", {"sqlite": {}})],
        "persistence.datastores.spare: not used by defaultStore",
    ),
    ("missing required key", [("persistence/defaultStore", _DELETE)], "persistence.defaultStore: required"),
    (
        "unknown cluster",
        [("clusterMetadata/currentClusterName", "standbi")],
        "clusterMetadata.currentClusterName: 'standbi' is not listed under clusterInformation",
    ),
    (
        "unknown kafka cluster",
        [("kafka/topics/active/cluster", "prod")],
        "kafka.topics.active.cluster: unknown cluster 'prod'",
    ),
    (
        "bad elasticsearch URI",
        [(f"{ES}/url", "127.0.0.1:9200")],
        "persistence.datastores.es-visibility.elasticsearch.url: expected http(s)://host:port",
    ),
    (
        "bad elasticsearch scheme",
        [(f"{ES}/url/scheme", "ftp")],
        "persistence.datastores.es-visibility.elasticsearch.url.scheme: Input should be 'http' or 'https'",
    ),
    (
        "bad archival URI",
        [("namespaceDefaults/archival/history/URI", "s3://bucket/x")],
        "namespaceDefaults.archival.history.URI",
    ),
    (
        "bad bind IP",
        [("services/history/rpc", {"bindOnIP": "localhost"})],
        "services.history.rpc.bindOnIP: 'localhost' is not an IP address",
    ),
    (
        "port clash",
        [("services/matching/rpc/grpcPort", 7234)],
        "services.matching.rpc.grpcPort: port 7234 is also services.history.rpc.grpcPort on 127.0.0.1",
    ),
    (
        "bad membership duration",
        [("global/membership/maxJoinDuration", "soon")],
        "global.membership.maxJoinDuration: 'soon' is not a duration",
    ),
    (
        "bad public client",
        [("publicClient/hostPort", "localhost")],
        "publicClient.hostPort: expected host:port",
    ),
    ("not supported: pprof", [("global/pprof", {"port": 7936})], "global.pprof: not supported"),
    (
        "not supported: log",
        [("log", {"stdout": True, "level": "info"})],
        "log: not supported in the config file",
    ),
    (
        "not supported: sql",
        [("persistence/datastores/mysql", {"sql": {"pluginName": "mysql"}})],
        "persistence.datastores.mysql.sql: SQL datastores (MySQL, PostgreSQL) are not supported",
    ),
    (
        "not supported: toDC",
        [("dcRedirectionPolicy/toDC", "standby")],
        "dcRedirectionPolicy.toDC: 'standby': forwarding to a fixed cluster is not supported",
    ),
    (
        "not supported: statsd",
        [("global/metrics/statsd", {"hostPort": "x:1"})],
        "global.metrics.statsd: statsd is not supported",
    ),
    (
        "metrics endpoints differ",
        [("services/history/metrics", {"prometheus": {"listenAddress": "127.0.0.1:8001"}})],
        "services.history.metrics.prometheus.listenAddress: '127.0.0.1:8001' differs from '127.0.0.1:8000'",
    ),
    (
        "metrics tags conflict",
        [("services/history/metrics", {"tags": {"cluster": "b"}})],
        "services.history.metrics.tags.cluster: 'b' conflicts with 'active'",
    ),
    (
        "kafka tls file missing",
        [("kafka/tls", {"enabled": True, "caFile": "/nonexistent/ca.pem"})],
        "kafka.tls: caFile: no such file '/nonexistent/ca.pem'",
    ),
    (
        "cassandra visibility",
        [("persistence/advancedVisibilityStore", _DELETE), ("persistence/visibilityStore", "cass-default")],
        "persistence.visibilityStore: datastore 'cass-default' is cassandra",
    ),
    (
        "both visibility stores",
        [("persistence/visibilityStore", "es-visibility")],
        "persistence.advancedVisibilityStore: give visibilityStore or advancedVisibilityStore, not both",
    ),
    (
        "unknown rpcName",
        [("clusterMetadata/clusterInformation/standby/rpcName", "temporal-frontend")],
        "clusterMetadata.clusterInformation.standby.rpcName: "
        "Input should be 'cadenza-frontend' or 'frontend'",
    ),
    (
        "tracing typo",
        [("tracing", {"otlp": {"endpont": "http://x:4317"}})],
        "tracing.otlp.endpont: unknown key; expected one of: endpoint, serviceName",
    ),
]


@pytest.mark.parametrize(("case", "edits", "expected"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_config_is_one_message_naming_the_file_and_the_key(
    tmp_path: Path, case: str, edits: list[tuple[str, object]], expected: str
) -> None:
    doc = _doc()
    for dotted, value in edits:
        _set(doc, dotted, value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {expected}"), lines[0]


def test_kafka_tls_becomes_the_clients_ssl_settings(tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("x")
    topology = KafkaTopology.from_mapping(
        {
            "clusters": {"c": {"brokers": ["b:9093"]}},
            "tls": {
                "enabled": True,
                "caFile": str(tmp_path / "ca.pem"),
                "certFile": str(tmp_path / "client.pem"),
                "keyFile": str(tmp_path / "client.key"),
            },
        }
    )
    assert topology.client_config() == {
        "security.protocol": "SSL",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
    }
    assert (
        KafkaTopology.from_mapping(
            {"clusters": {"c": {"brokers": ["b:1"]}}, "tls": {"enabled": False}}
        ).client_config()
        == {}
    )


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    doc = _doc()
    (tmp_path / "client.pem").write_text("x")
    doc["kafka"]["tls"] = {"enabled": True, "certFile": str(tmp_path / "client.pem")}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"kafka\.tls: give certFile and keyFile together"):
        load_config(path)


def test_all_problems_of_a_file_are_reported_at_once(tmp_path: Path) -> None:
    doc = _doc()
    doc["log"] = {"level": "info"}
    doc["persistence"]["numHistoryShards"] = "four"
    doc["services"]["frontend"]["rpc"]["grpcPort"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = [line.split(": ")[1] for line in str(info.value).splitlines()]
    assert keys == ["log", "persistence.numHistoryShards", "services.frontend.rpc.grpcPort"]


@pytest.mark.kafka
def test_admin_kafka_create_topics_makes_the_config_topics_once(tmp_path: Path, kafka_bootstrap: str) -> None:
    import asyncio
    import uuid

    from click.testing import CliRunner

    from cadenza.engine.bus.kafka import KafkaBus
    from cadenza.ops.cli import _register, cli

    suffix = uuid.uuid4().hex[:8]
    vis, dlq = f"cadenza-vis-{suffix}", f"cadenza-vis-{suffix}-dlq"
    config = tmp_path / "server.yaml"
    config.write_text(
        "persistence: {defaultStore: db, datastores: {db: {sqlite: {}}}}\n"
        f"kafka:\n  clusters: {{main: {{brokers: ['{kafka_bootstrap}']}}}}\n"
        f"  topics: {{{vis}: {{cluster: main, partitions: 3}}, {dlq}: {{cluster: main}}}}\n"
        f"  applications: {{visibility: {{topic: {vis}, dlq-topic: {dlq}}}}}\n"
    )
    _register()
    args = ["admin", "kafka", "create-topics", "--config", str(config)]

    async def topics() -> dict[str, int]:
        bus = KafkaBus(kafka_bootstrap)
        try:
            return {n: c for n, c in (await bus.list_topics()).items() if n in (vis, dlq)}
        finally:
            await bus.close()

    async def drop() -> None:
        bus = KafkaBus(kafka_bootstrap)
        try:
            await bus.delete_topics([vis, dlq])
        finally:
            await bus.close()

    try:
        first = CliRunner().invoke(cli, args)
        assert first.exit_code == 0 and f"created {vis}, {dlq}" in first.output, first.output
        assert asyncio.run(topics()) == {vis: 3, dlq: 1}
        again = CliRunner().invoke(cli, args)
        assert again.exit_code == 0 and "created nothing (all exist)" in again.output, again.output
    finally:
        asyncio.run(drop())
