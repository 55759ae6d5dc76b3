"""Search-attribute names, typed values, payloads and the registry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cadenza.visibility.errors import SearchAttributeError
from cadenza.visibility.search_attributes import (
    InMemorySearchAttributeStorage,
    SearchAttributeRegistry,
    SearchAttributeType,
    coerce_value,
    decode_search_attribute,
    encode_search_attribute,
    validate_name,
)

T = SearchAttributeType


@pytest.mark.parametrize("name", ["CustomerId", "a", "Build_Id2", "X" * 64])
def test_valid_names(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "use a letter"),
        ("2fast", "use a letter"),
        ("has space", "use a letter"),
        ("dash-ed", "use a letter"),
        ("X" * 65, "at most 64"),
        ("order", "word of the query language"),
        ("Starts_With", "word of the query language"),
        ("runid", "RunId is a system attribute"),
        ("StartTime", "StartTime is a system attribute"),
    ],
)
def test_invalid_names(name: str, reason: str) -> None:
    with pytest.raises(SearchAttributeError, match=reason):
        validate_name(name)


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        (T.KEYWORD, "cust-1"),
        (T.TEXT, "Cleaned video"),
        (T.INT, -(2**63)),
        (T.DOUBLE, 2.5),
        (T.BOOL, False),
        (T.DATETIME, datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        (T.KEYWORD_LIST, ["a", "b"]),
        (T.KEYWORD_LIST, []),
    ],
)
def test_payload_round_trip(type_: SearchAttributeType, value: object) -> None:
    payload = encode_search_attribute(value)  # type: ignore[arg-type]
    assert payload["metadata"] == {"encoding": b"json/plain"}
    assert decode_search_attribute("Attr", type_, payload) == value


def test_coercions() -> None:
    assert coerce_value("S", T.DOUBLE, 3) == 3.0 and isinstance(coerce_value("S", T.DOUBLE, 3), float)
    plus_one = datetime(2026, 11, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert coerce_value("D", T.DATETIME, plus_one) == datetime(2026, 11, 1, tzinfo=UTC)
    assert coerce_value("D", T.DATETIME, "2026-11-01T00:00:00Z") == datetime(2026, 11, 1, tzinfo=UTC)
    assert coerce_value("L", T.KEYWORD_LIST, ("a",)) == ["a"]


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        (T.INT, True, "Attr has type Int: value True is not an integer"),
        (T.INT, 2**63, "is not a 64-bit integer"),
        (T.INT, "3", "value '3' is not an integer"),
        (T.DOUBLE, float("nan"), "is not a finite number"),
        (T.BOOL, 1, "value 1 is not true or false"),
        (T.KEYWORD, 5, "Attr has type Keyword: value 5 is not a string"),
        (T.DATETIME, datetime(2026, 1, 1), "is not a timezone-aware datetime"),
        (T.DATETIME, "tomorrow", "value 'tomorrow' is not an RFC 3339 date-time"),
        (T.KEYWORD_LIST, ["a", 1], "is not a list of strings"),
    ],
)
def test_wrong_values_name_attribute_and_value(
    type_: SearchAttributeType, value: object, message: str
) -> None:
    with pytest.raises(SearchAttributeError, match=message):
        coerce_value("Attr", type_, value)


def test_payload_errors() -> None:
    with pytest.raises(SearchAttributeError, match="Attr: payload encoding b'binary/plain'"):
        decode_search_attribute("Attr", T.INT, {"metadata": {"encoding": b"binary/plain"}, "data": b"1"})
    with pytest.raises(SearchAttributeError, match="Attr: payload data is not JSON"):
        decode_search_attribute("Attr", T.INT, {"metadata": {"encoding": b"json/plain"}, "data": b"{"})
    bad = {"metadata": {"encoding": b"json/plain"}, "data": json.dumps("x").encode()}
    with pytest.raises(SearchAttributeError, match="Attr has type Int: value 'x'"):
        decode_search_attribute("Attr", T.INT, bad)


def test_registry_persists_through_its_storage_and_refuses_retyping() -> None:
    async def scenario() -> None:
        storage = InMemorySearchAttributeStorage()
        registry = SearchAttributeRegistry(storage)
        await registry.add("CustomerId", "Keyword")
        await registry.add("CustomerId", T.KEYWORD)
        with pytest.raises(
            SearchAttributeError, match="CustomerId already has type Keyword: cannot make it Int"
        ):
            await registry.add("CustomerId", T.INT)
        other = SearchAttributeRegistry(storage)
        await other.load()
        assert other.custom == {"CustomerId": T.KEYWORD}
        assert other.type_of("StartTime") is T.DATETIME
        with pytest.raises(
            SearchAttributeError, match=r"unknown search attribute customerid \(did you mean CustomerId"
        ):
            other.type_of("customerid")
        with pytest.raises(SearchAttributeError) as info:
            await other.add_many({"1x": "Int", "Ok": "Number"})
        assert "use a letter" in str(info.value) and "unknown type 'Number'" in str(info.value)
        assert "Ok" not in other.custom

    asyncio.run(scenario())


def test_registry_decodes_event_payloads() -> None:
    async def scenario() -> None:
        registry = SearchAttributeRegistry()
        await registry.add_many({"Priority": "Int", "DueDate": "Datetime"})
        payloads = {
            "Priority": encode_search_attribute(3),
            "DueDate": encode_search_attribute(datetime(2026, 11, 1, tzinfo=UTC)),
        }
        assert registry.decode(payloads) == {"Priority": 3, "DueDate": datetime(2026, 11, 1, tzinfo=UTC)}
        with pytest.raises(SearchAttributeError, match="unknown search attribute Nope"):
            registry.decode({"Nope": encode_search_attribute(1)})

    asyncio.run(scenario())
