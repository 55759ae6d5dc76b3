"""The ``kafka:`` block of the server config: clusters, topics, and which topic serves what.

Shaped like the anchors' config::

    kafka:
      clusters:
        test: {brokers: ["127.0.0.1:19092"]}
      topics:
        active: {cluster: test, partitions: 8, replicas: 1}
        active-dlq: {cluster: test}
        cadenza-visibility: {cluster: test, partitions: 8}
        cadenza-visibility-dlq: {cluster: test}
      cluster-topics:                   # or cadenza-cluster-topics, the anchors' spelling
        active: {topic: active, dlq-topic: active-dlq}
      applications:
        visibility: {topic: cadenza-visibility, dlq-topic: cadenza-visibility-dlq}
      tls:                              # optional: every client of every Kafka cluster uses TLS
        enabled: true
        certFile: /etc/cadenza/kafka/client.pem   # client certificate (mutual TLS), with keyFile
        keyFile: /etc/cadenza/kafka/client.key
        caFile: /etc/cadenza/kafka/ca.pem         # default: the system's trust store

``cluster-topics`` maps each replication cluster (from ``clusterMetadata``) to the topic it publishes
its replication tasks on and that topic's DLQ. Validation reports every problem at once, each naming
its key (``kafka.topics.active.cluster: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import TopologyError
from .protocol import Bus, TopicSpec

DEFAULT_VISIBILITY_TOPIC = "cadenza-visibility"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class KafkaCluster(_Model):
    brokers: list[str] = Field(min_length=1)


class TopicConfig(_Model):
    cluster: str
    partitions: int = Field(default=1, ge=1)
    replicas: int = Field(default=1, ge=1)


class TopicPair(_Model):
    topic: str
    dlq_topic: str = Field(alias="dlq-topic")


class Applications(_Model):
    visibility: TopicPair | None = None


class KafkaTLS(_Model):
    """``kafka.tls``: librdkafka's SSL settings for every producer, consumer and admin client."""

    enabled: bool = False
    certFile: str | None = None
    keyFile: str | None = None
    caFile: str | None = None

    @model_validator(mode="after")
    def _files(self) -> KafkaTLS:
        if (self.certFile is None) != (self.keyFile is None):
            raise ValueError("give certFile and keyFile together (the client's certificate and its key)")
        if not self.enabled and (self.certFile or self.caFile):
            raise ValueError("certFile, keyFile and caFile take effect only with enabled: true")
        for key in ("certFile", "keyFile", "caFile"):
            value = getattr(self, key)
            # Checked here: librdkafka would only say so at the first connection, in its own log.
            if value is not None and not Path(value).expanduser().is_file():
                raise ValueError(f"{key}: no such file {value!r}")
        return self

    def client_config(self) -> dict[str, str]:
        """The librdkafka properties (``security.protocol=SSL`` and the files); empty when off."""
        if not self.enabled:
            return {}
        out = {"security.protocol": "SSL"}
        for key, value in (
            ("ssl.certificate.location", self.certFile),
            ("ssl.key.location", self.keyFile),
            ("ssl.ca.location", self.caFile),
        ):
            if value is not None:
                out[key] = value
        return out


class KafkaTopology(_Model):
    clusters: dict[str, KafkaCluster] = Field(min_length=1)
    topics: dict[str, TopicConfig] = Field(default_factory=dict)
    cluster_topics: dict[str, TopicPair] = Field(
        default_factory=dict,
        alias="cluster-topics",
        validation_alias=AliasChoices("cluster-topics", "cadenza-cluster-topics"),
    )
    applications: Applications = Field(default_factory=Applications)
    tls: KafkaTLS = Field(default_factory=KafkaTLS)

    def client_config(self) -> dict[str, str]:
        """librdkafka properties every client of this topology adds (TLS)."""
        return self.tls.client_config()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> KafkaTopology:
        """Validate the ``kafka:`` block; raises ``TopologyError`` listing every problem."""
        try:
            topology = cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = [f"kafka.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
            raise _error(source, problems) from None
        problems = topology.problems()
        if problems:
            raise _error(source, problems)
        return topology

    def problems(self) -> list[str]:
        """Cross-references that do not resolve (a topic's cluster, a pair's topics)."""
        out = []
        for name, topic in self.topics.items():
            if topic.cluster not in self.clusters:
                out.append(
                    f"kafka.topics.{name}.cluster: unknown cluster {topic.cluster!r}; "
                    f"known: {', '.join(sorted(self.clusters))}"
                )
        pairs = [(f"cluster-topics.{c}", pair) for c, pair in self.cluster_topics.items()]
        if self.applications.visibility is not None:
            pairs.append(("applications.visibility", self.applications.visibility))
        for where, pair in pairs:
            for key, name in (("topic", pair.topic), ("dlq-topic", pair.dlq_topic)):
                if name not in self.topics:
                    out.append(f"kafka.{where}.{key}: topic {name!r} is not declared under kafka.topics")
        return out

    def replication_topics(self, cluster: str) -> TopicPair:
        """The replication topic (and its DLQ) that ``cluster`` publishes to."""
        try:
            return self.cluster_topics[cluster]
        except KeyError:
            raise TopologyError(f"kafka.cluster-topics has no entry for cluster {cluster!r}") from None

    def visibility_topics(self) -> TopicPair:
        if self.applications.visibility is None:
            raise TopologyError("kafka.applications.visibility is not configured")
        return self.applications.visibility

    def brokers(self, topic: str) -> list[str]:
        """The brokers of the Kafka cluster holding ``topic``."""
        try:
            return self.clusters[self.topics[topic].cluster].brokers
        except KeyError:
            raise TopologyError(f"topic {topic!r} is not declared under kafka.topics") from None

    def topic_specs(self) -> dict[str, list[TopicSpec]]:
        """Per Kafka cluster name, the topics to create there."""
        out: dict[str, list[TopicSpec]] = {}
        for name, topic in sorted(self.topics.items()):
            out.setdefault(topic.cluster, []).append(TopicSpec(name, topic.partitions, topic.replicas))
        return out


def _error(source: str, problems: list[str]) -> TopologyError:
    reasons = "\n".join(f"  - {p}" for p in problems)
    noun = "reason" if len(problems) == 1 else "reasons"
    return TopologyError(f"invalid kafka config in {source} for {len(problems)} {noun}:\n{reasons}")


def default_topology(
    replication_clusters: list[str],
    *,
    brokers: list[str],
    partitions: int = 4,
    replicas: int = 1,
    kafka_cluster: str = "default",
    visibility_topic: str = DEFAULT_VISIBILITY_TOPIC,
) -> KafkaTopology:
    """The conventional layout on one Kafka cluster: ``<cluster>``/``<cluster>-dlq`` per replication
    cluster, and ``cadenza-visibility``/``cadenza-visibility-dlq``. DLQs get one partition."""
    topics: dict[str, Any] = {}
    cluster_topics: dict[str, Any] = {}
    for name in [*replication_clusters, visibility_topic]:
        topics[name] = {"cluster": kafka_cluster, "partitions": partitions, "replicas": replicas}
        topics[f"{name}-dlq"] = {"cluster": kafka_cluster, "partitions": 1, "replicas": replicas}
    for name in replication_clusters:
        cluster_topics[name] = {"topic": name, "dlq-topic": f"{name}-dlq"}
    return KafkaTopology.from_mapping(
        {
            "clusters": {kafka_cluster: {"brokers": brokers}},
            "topics": topics,
            "cluster-topics": cluster_topics,
            "applications": {
                "visibility": {"topic": visibility_topic, "dlq-topic": f"{visibility_topic}-dlq"}
            },
        }
    )


async def setup_topics(topology: KafkaTopology, *, bus: Bus | None = None) -> dict[str, list[str]]:
    """Create every topic of ``topology`` that is missing; returns the names created per cluster.

    Each Kafka cluster is reached at its configured brokers, unless ``bus`` is given (e.g. the
    embedded log, which then holds the topics of every cluster). Existing topics are left alone.
    """
    created: dict[str, list[str]] = {}
    for cluster, specs in topology.topic_specs().items():
        if bus is not None:
            created[cluster] = await bus.create_topics(specs)
            continue
        from .kafka import KafkaBus  # confluent-kafka is an optional dependency

        kafka = KafkaBus(",".join(topology.clusters[cluster].brokers), config=topology.client_config())
        try:
            created[cluster] = await kafka.create_topics(specs)
        finally:
            await kafka.close()
    return created
