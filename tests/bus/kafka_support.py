"""Finding the test Kafka broker: CADENZA_TEST_KAFKA, else the `cadenza dev services` port.

A test that needs Kafka FAILS when it does not answer (it never skips): a skipped integration test
reads like a pass.
"""

from __future__ import annotations

import os

import pytest

from cadenza.ops.devservices.services import probe_kafka

DEFAULT_ADDRESS = "127.0.0.1:19092"


def kafka_address() -> str:
    return os.environ.get("CADENZA_TEST_KAFKA") or DEFAULT_ADDRESS


def require_kafka(timeout: float = 10.0) -> str:
    address = kafka_address()
    if not probe_kafka(address, timeout):
        pytest.fail(
            f"Kafka does not answer at {address}: run `cadenza dev services up kafka` "
            "(or set CADENZA_TEST_KAFKA to a running broker)",
            pytrace=False,
        )
    return address
