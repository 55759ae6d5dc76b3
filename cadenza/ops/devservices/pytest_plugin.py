"""pytest fixtures for the real servers of `cadenza dev services`.

Load with `pytest_plugins = ["cadenza.ops.devservices.pytest_plugin"]`. Addresses come from
CADENZA_TEST_KAFKA ("host:port"), CADENZA_TEST_CASSANDRA ("host:port") and
CADENZA_TEST_ELASTICSEARCH (URL), else the ports `cadenza dev services up` uses. A test that needs a
server which does not answer fails (it never skips): a skipped integration test looks like a pass.
The `jaeger` and `prometheus` fixtures start theirs (building them with Go the first time).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from cadenza.ops.devservices.services import (
    LOOPBACK,
    SERVICES,
    probe_cassandra,
    probe_elasticsearch,
    probe_kafka,
)

HINT = "start the servers with `cadenza dev services up` (or run the whole suite with `bash scripts/test`)"
PROBE_TIMEOUT = 10.0


def kafka_address() -> str:
    return os.environ.get("CADENZA_TEST_KAFKA") or SERVICES["kafka"].address


def cassandra_address() -> tuple[str, int]:
    raw = os.environ.get("CADENZA_TEST_CASSANDRA")
    if not raw:
        return (LOOPBACK, SERVICES["cassandra"].port)
    host, _, port = raw.rpartition(":")
    return (host or LOOPBACK, int(port))


def elasticsearch_address() -> str:
    return os.environ.get("CADENZA_TEST_ELASTICSEARCH") or SERVICES["elasticsearch"].address


def _require(ok: bool, what: str, where: str) -> None:
    if not ok:
        pytest.fail(f"{what} does not answer at {where}: {HINT}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of a running Kafka broker, e.g. "127.0.0.1:19092"."""
    address = kafka_address()
    _require(probe_kafka(address, PROBE_TIMEOUT), "Kafka", address)
    return address


@pytest.fixture(scope="session")
def cassandra_contact() -> tuple[str, int]:
    """(host, port) of a running Cassandra node's CQL endpoint."""
    host, port = cassandra_address()
    _require(probe_cassandra(host, port, PROBE_TIMEOUT), "Cassandra", f"{host}:{port}")
    return (host, port)


@pytest.fixture(scope="session")
def elasticsearch_url() -> str:
    """Base URL of a running Elasticsearch node, e.g. "http://127.0.0.1:19200"."""
    url = elasticsearch_address()
    _require(probe_elasticsearch(url, PROBE_TIMEOUT), "Elasticsearch", url)
    return url


# -- Jaeger and Prometheus: started (and on first use built) by the fixtures themselves -----------------

GO_SERVICE_TIMEOUT = 120.0


def _go_service(name: str) -> Any:
    """Start a Go-built service through `cadenza dev services` (building it the first time); a
    failure fails the test with the reason and the log tail, never skips it."""
    from cadenza.ops.devservices.manager import ServiceError, ServiceManager

    manager = ServiceManager()
    try:
        manager.up([name], timeout=GO_SERVICE_TIMEOUT)
    except ServiceError as e:
        tails = "".join(f"\n----- {n} log -----\n{t}" for n, t in e.logs.items() if t)
        pytest.fail(f"cannot start {name} with `cadenza dev services up {name}`: {e}{tails}", pytrace=False)
    return SERVICES[name]


@pytest.fixture(scope="session")
def jaeger() -> Any:
    """The dev Jaeger (a `cadenza.ops.devservices.services.Jaeger`): OTLP in, query API out."""
    return _go_service("jaeger")


@pytest.fixture(scope="session")
def prometheus() -> Any:
    """The dev Prometheus (`...services.Prometheus`); point it at targets with `set_scrape_targets`."""
    return _go_service("prometheus")
