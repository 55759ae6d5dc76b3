"""A payload converter of one's own, as temporalio's ``custom_converter`` sample writes it: an
``EncodingPayloadConverter`` for a type, put before the defaults in a composite, handed over with
``dataclasses.replace(converter.default(), payload_converter_class=...)``, and used on a copied
client by the workflow, its activity and the caller."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from e2e.conftest import run_in_env

import cadenza.converter
from cadenza import activity, workflow
from cadenza.api.common.v1 import Payload
from cadenza.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
)
from cadenza.sdk.exceptions import PayloadDecodeError, PayloadEncodeError
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker


class Greeting:
    """Not JSON-able: the default converter refuses it."""

    def __init__(self, name: str) -> None:
        self.name = name


class GreetingConverter(EncodingPayloadConverter):
    @property
    def encoding(self) -> str:
        return "text/my-greeting"

    def to_payload(self, value: Any) -> Payload | None:
        if isinstance(value, Greeting):
            return Payload(
                metadata={"encoding": self.encoding.encode(), "kind": b"greeting"}, data=value.name.encode()
            )
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        assert type_hint in (None, Greeting), type_hint
        return Greeting(payload.data.decode())


class GreetingPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(GreetingConverter(), *DefaultPayloadConverter.default_encoding_payload_converters)


greeting_converter = dataclasses.replace(
    cadenza.converter.default(), payload_converter_class=GreetingPayloadConverter
)


@activity.defn
async def polish(g: Greeting) -> Greeting:
    return Greeting(g.name + "!")


@workflow.defn
class Greet:
    @workflow.run
    async def run(self, g: Greeting) -> Greeting:
        polished = await workflow.execute_activity(polish, g, start_to_close_timeout=timedelta(seconds=10))
        return Greeting(f"Hello, {polished.name}")


def test_the_converter_writes_its_own_encoding_and_the_defaults_the_rest() -> None:
    conv = greeting_converter
    assert isinstance(conv, DataConverter) and isinstance(conv.payload_converter, GreetingPayloadConverter)
    greeting, number, nothing, raw = conv.to_payloads([Greeting("Ada"), 7, None, b"\x00"])
    assert greeting == {"metadata": {"encoding": b"text/my-greeting", "kind": b"greeting"}, "data": b"Ada"}
    assert type(greeting) is dict  # stored and sent as the plain dict every payload is
    assert number["metadata"]["encoding"] == b"json/plain" and number["data"] == b"7"
    assert nothing["metadata"]["encoding"] == b"binary/null"
    assert raw["metadata"]["encoding"] == b"binary/plain"
    back = conv.from_payloads([greeting, number, nothing, raw], [Greeting, int, None, bytes])
    assert back[0].name == "Ada" and back[1:] == [7, None, b"\x00"]
    # The default converter's fast path writes the same bytes as its composite.
    default = DataConverter()
    for value in (7, "x", None, b"\x01", {"a": [1, 2]}):
        assert default.to_payloads([value]) == DataConverter(payload_converter_class=_Composite).to_payloads(
            [value]
        )
    # temporalio's attribute names on a payload.
    p = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    assert (
        p.metadata["encoding"] == b"json/plain"
        and p.data == b"1"
        and p == {"metadata": p.metadata, "data": b"1"}
    )


class _Composite(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(*DefaultPayloadConverter.default_encoding_payload_converters)


def test_what_no_converter_takes_is_refused_with_its_index_and_type() -> None:
    with pytest.raises(PayloadEncodeError, match=r"argument 1 of type Greeting"):
        DataConverter().to_payloads(["fine", Greeting("x")])

    class OnlyGreetings(CompositePayloadConverter):
        def __init__(self) -> None:
            super().__init__(GreetingConverter())

    only = DataConverter(payload_converter_class=OnlyGreetings)
    with pytest.raises(PayloadEncodeError, match=r"argument 1 of type int.*text/my-greeting"):
        only.to_payloads([Greeting("x"), 5])
    with pytest.raises(PayloadDecodeError, match=r"Payload 0 has unknown encoding b'json/plain'"):
        only.from_payloads(DataConverter().to_payloads([5]))
    with pytest.raises(PayloadDecodeError, match=r"payload 0 with the text/my-greeting converter"):
        greeting_converter.from_payloads(greeting_converter.to_payloads([Greeting("x")]), [int])


def test_a_workflow_and_its_activity_take_and_return_the_custom_type() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        config = env.client.config()
        config["data_converter"] = greeting_converter
        client = type(env.client)(**config)
        async with Worker(client, task_queue="greetings", workflows=[Greet], activities=[polish]):
            result = await client.execute_workflow(
                Greet.run, Greeting("Temporal"), id="greet", task_queue="greetings"
            )
        assert isinstance(result, Greeting) and result.name == "Hello, Temporal!"
        # On the wire and in history: the custom encoding, readable by anyone with the converter.
        history = await client.get_workflow_handle("greet").fetch_history()
        started = history.events[0].attributes["input"][0]
        assert started["metadata"]["encoding"] == b"text/my-greeting" and started["data"] == b"Temporal"

    run_in_env(scenario)
