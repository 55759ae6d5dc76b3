"""The Apache Cassandra persistence backend (cassandra-driver).

Data model, consistency levels and schema versioning: ``docs/cassandra.md``.
"""

from .schema import (
    SCHEMA_VERSION,
    CassandraSchemaError,
    check_schema,
    read_schema_version,
    setup_schema,
    update_schema,
)
from .session import CassandraSession, translate_error
from .stores import CassandraStores, open_cassandra_stores, open_cassandra_stores_async

__all__ = [
    "SCHEMA_VERSION",
    "CassandraSchemaError",
    "CassandraSession",
    "CassandraStores",
    "check_schema",
    "open_cassandra_stores",
    "open_cassandra_stores_async",
    "read_schema_version",
    "setup_schema",
    "translate_error",
    "update_schema",
]
