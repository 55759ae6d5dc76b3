"""Real Kafka, Cassandra and Elasticsearch for development and tests, from Maven Central jars."""

from cadenza.ops.devservices.manager import ServiceError, ServiceManager, ServiceStatus
from cadenza.ops.devservices.services import SERVICES, Cassandra, Elasticsearch, Kafka, Service

__all__ = [
    "SERVICES",
    "Cassandra",
    "Elasticsearch",
    "Kafka",
    "Service",
    "ServiceError",
    "ServiceManager",
    "ServiceStatus",
]
