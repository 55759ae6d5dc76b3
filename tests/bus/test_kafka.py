"""The bus contract on real Kafka (`cadenza dev services up kafka`, or CADENZA_TEST_KAFKA)."""

from __future__ import annotations

import pytest

from cadenza.engine.bus.kafka import KafkaBus

from .contract import BusContract
from .kafka_support import require_kafka

pytestmark = pytest.mark.kafka


class TestKafkaBus(BusContract):
    @pytest.fixture(autouse=True)
    def _broker(self) -> None:
        self.bootstrap = require_kafka()

    def make_bus(self) -> KafkaBus:
        return KafkaBus(self.bootstrap)
