"""The kafka: config block and the `dlq` / `topics` commands (on the embedded log)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cadenza.engine.bus import EmbeddedBus, KafkaTopology, TopicSpec, default_topology, setup_topics
from cadenza.engine.bus.cli import dlq, topics
from cadenza.engine.bus.errors import TopologyError

from .contract import run

CONFIG = """
kafka:
  clusters:
    test: {brokers: ["127.0.0.1:19092"]}
  topics:
    active: {cluster: test, partitions: 4}
    active-dlq: {cluster: test}
    cadenza-visibility: {cluster: test, partitions: 2, replicas: 1}
    cadenza-visibility-dlq: {cluster: test}
  cluster-topics:
    active: {topic: active, dlq-topic: active-dlq}
  applications:
    visibility: {topic: cadenza-visibility, dlq-topic: cadenza-visibility-dlq}
"""


def test_topology_names_the_replication_and_visibility_topics() -> None:
    topology = default_topology(["active", "standby"], brokers=["127.0.0.1:19092"], partitions=8)
    assert topology.replication_topics("standby").dlq_topic == "standby-dlq"
    assert topology.visibility_topics().topic == "cadenza-visibility"
    specs = {s.name: s for s in topology.topic_specs()["default"]}
    assert specs["active"] == TopicSpec("active", 8, 1)
    assert specs["cadenza-visibility-dlq"].partitions == 1


def test_topology_validation_reports_every_problem_by_key() -> None:
    with pytest.raises(TopologyError) as info:
        KafkaTopology.from_mapping(
            {
                "clusters": {"test": {"brokers": ["b:9092"]}},
                "topics": {"active": {"cluster": "nope"}},
                "cluster-topics": {"active": {"topic": "active", "dlq-topic": "active-dlq"}},
            },
            source="dev.yaml",
        )
    text = str(info.value)
    assert "dev.yaml for 2 reasons" in text
    assert "kafka.topics.active.cluster: unknown cluster 'nope'" in text
    assert "kafka.cluster-topics.active.dlq-topic: topic 'active-dlq' is not declared" in text
    with pytest.raises(TopologyError, match=r"kafka\.topics\.t\.partitions: Input should be greater"):
        KafkaTopology.from_mapping(
            {"clusters": {"c": {"brokers": ["b"]}}, "topics": {"t": {"cluster": "c", "partitions": 0}}}
        )


def test_every_command_answers_help() -> None:
    runner = CliRunner()
    for command, args in [(dlq, []), (dlq, ["read"]), (dlq, ["purge"]), (dlq, ["merge"]), (topics, [])]:
        result = runner.invoke(command, [*args, "--help"])
        assert result.exit_code == 0, result.output


def test_topics_command_creates_the_configured_topics(tmp_path: Path) -> None:
    config = tmp_path / "dev.yaml"
    config.write_text(CONFIG)
    url = f"sqlite:///{tmp_path / 'bus.db'}"
    result = CliRunner().invoke(topics, ["--config", str(config), "--bus", url])
    assert result.exit_code == 0, result.output
    assert "test: created active, active-dlq, cadenza-visibility, cadenza-visibility-dlq" in result.output

    async def listed() -> dict[str, int]:
        bus = EmbeddedBus(tmp_path / "bus.db")
        try:
            again = await setup_topics(KafkaTopology.from_mapping(_kafka_block(config)), bus=bus)
            assert again == {"test": []}
            return await bus.list_topics()
        finally:
            await bus.close()

    expected = {"active": 4, "active-dlq": 1, "cadenza-visibility": 2, "cadenza-visibility-dlq": 1}
    assert run(listed()) == expected


def _kafka_block(path: Path) -> dict[str, object]:
    import yaml  # type: ignore[import-untyped]

    return dict(yaml.safe_load(path.read_text())["kafka"])


def _seed_dlq(path: Path, count: int) -> None:
    async def main() -> None:
        bus = EmbeddedBus(path)
        try:
            await bus.create_topics([TopicSpec("src", 1), TopicSpec("src-dlq", 1)])
            producer = bus.producer()
            for i in range(count):
                await producer.produce(
                    "src-dlq",
                    f"wf{i}".encode(),
                    f"v{i}".encode(),
                    {
                        "error": f"RuntimeError: boom {i}".encode(),
                        "attempts": b"5",
                        "source-topic": b"src",
                        "source-partition": b"0",
                        "source-offset": str(i).encode(),
                    },
                )
        finally:
            await bus.close()

    asyncio.run(main())


def test_dlq_read_purge_merge_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    _seed_dlq(path, 4)
    env = {"CADENZA_BUS": f"sqlite:///{path}"}
    cli = CliRunner()

    table = cli.invoke(dlq, ["read", "--topic", "src-dlq"], env=env)
    assert table.exit_code == 0, table.output
    header = table.output.splitlines()[0].split()
    assert header == ["PARTITION", "OFFSET", "KEY", "ATTEMPTS", "SOURCE", "ERROR"]
    assert "src[0]@2" in table.output and "RuntimeError: boom 2" in table.output

    rows = json.loads(cli.invoke(dlq, ["read", "--topic", "src-dlq", "-o", "json"], env=env).output)
    assert [r["offset"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["key"] == "wf0" and rows[0]["attempts"] == 5

    purged = cli.invoke(dlq, ["purge", "--topic", "src-dlq", "--up-to", "1", "--yes"], env=env)
    assert purged.exit_code == 0 and "purged 2 message(s)" in purged.output
    merged = cli.invoke(dlq, ["merge", "--topic", "src-dlq", "-o", "json"], env=env)
    assert json.loads(merged.output) == {"merged": 2, "skipped": 0}
    assert json.loads(cli.invoke(dlq, ["read", "--topic", "src-dlq", "-o", "json"], env=env).output) == []

    async def source() -> list[bytes | None]:
        bus = EmbeddedBus(path)
        try:
            return [m.value for m in await bus.read("src", 0, 0)]
        finally:
            await bus.close()

    assert asyncio.run(source()) == [b"v2", b"v3"]


def test_dlq_errors_exit_non_zero_with_the_reason(tmp_path: Path) -> None:
    env = {"CADENZA_BUS": f"sqlite:///{tmp_path / 'bus.db'}"}
    result = CliRunner().invoke(dlq, ["read", "--topic", "nope-dlq"], env=env)
    assert result.exit_code == 1 and "topic 'nope-dlq' does not exist" in result.output
    usage = CliRunner().invoke(dlq, ["purge", "--topic", "x", "--yes"], env=env)
    assert usage.exit_code == 2 and "exactly one of --up-to OFFSET and --all" in usage.output
    assert isinstance(dlq, click.Group)
