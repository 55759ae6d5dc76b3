"""Values to payloads and back; exceptions to failures and back."""

from __future__ import annotations

import base64
import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from cadenza.sdk.converter import DataConverter, default_converter, exception_to_failure, failure_to_exception
from cadenza.sdk.exceptions import (
    ActivityError,
    ApplicationError,
    CanceledError,
    ChildWorkflowError,
    PayloadDecodeError,
    PayloadEncodeError,
    TerminatedError,
    TimeoutError,
    TimeoutType,
)


class Color(enum.Enum):
    RED = "red"


@dataclass
class Line:
    sku: str
    qty: int = 1


@dataclass
class Basket:
    owner: str
    lines: list[Line] = field(default_factory=list)
    color: Color = Color.RED
    at: datetime | None = None


class Video(pydantic.BaseModel):
    id: str
    formats: list[str]
    size: int | None = None


def roundtrip(value: Any, hint: Any = None) -> Any:
    conv = default_converter()
    return conv.from_payloads(conv.to_payloads([value]), [hint])[0]


def test_json_is_the_default_with_its_encoding() -> None:
    (payload,) = default_converter().to_payloads([{"a": [1, 2]}])
    assert payload == {"metadata": {"encoding": b"json/plain"}, "data": b'{"a":[1,2]}'}
    assert roundtrip({"a": [1, 2]}) == {"a": [1, 2]}


def test_none_and_bytes_have_their_own_encodings() -> None:
    conv = default_converter()
    none, raw = conv.to_payloads([None, b"\x00\xff"])
    assert none["metadata"]["encoding"] == b"binary/null"
    assert raw == {"metadata": {"encoding": b"binary/plain"}, "data": b"\x00\xff"}
    assert conv.from_payloads([none, raw], None) == [None, b"\x00\xff"]


def test_dataclass_round_trip_with_nested_values() -> None:
    basket = Basket("ann", [Line("a", 2), Line("b")], at=datetime(2024, 1, 2, tzinfo=UTC))
    assert roundtrip(basket, Basket) == basket
    assert roundtrip(basket) == {
        "owner": "ann",
        "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}],
        "color": "red",
        "at": "2024-01-02T00:00:00Z",
    }


def test_pydantic_round_trip() -> None:
    video = Video(id="v-42", formats=["mp4", "webm"])
    assert roundtrip(video, Video) == video
    assert roundtrip([video], list[Video]) == [video]


def test_scalars_and_misc_types() -> None:
    u = uuid.uuid4()
    assert roundtrip(u, uuid.UUID) == u
    assert roundtrip("x", str) == "x"
    assert roundtrip(3, int) == 3
    assert roundtrip(3, float) == 3
    assert roundtrip(None, Basket) is None


def test_unencodable_argument_names_index_and_type() -> None:
    with pytest.raises(PayloadEncodeError) as info:
        default_converter().to_payloads(["fine", 1, object()])
    assert isinstance(info.value, TypeError)
    assert info.value.index == 2 and info.value.value_type is object
    assert "argument 2 of type object" in str(info.value)


def test_decode_errors_name_the_type() -> None:
    conv = default_converter()
    with pytest.raises(PayloadDecodeError, match="as <class 'int'>"):
        conv.from_payloads(conv.to_payloads(["abc"]), [int])
    with pytest.raises(PayloadDecodeError, match="unknown encoding"):
        conv.from_payloads([{"metadata": {"encoding": b"x/y"}, "data": b""}], None)


class Base64Codec:
    def encode(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "metadata": {"encoding": b"b64", "inner": p["metadata"]["encoding"]},
                "data": base64.b64encode(p["data"]),
            }
            for p in payloads
        ]

    def decode(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"metadata": {"encoding": p["metadata"]["inner"]}, "data": base64.b64decode(p["data"])}
            for p in payloads
        ]


def test_payload_codec_wraps_encoding() -> None:
    conv = DataConverter(payload_codec=Base64Codec())
    payloads = conv.to_payloads(["secret", None])
    assert payloads[0]["metadata"]["encoding"] == b"b64"
    assert b"secret" not in payloads[0]["data"]
    assert conv.from_payloads(payloads, [str, None]) == ["secret", None]
    assert conv.from_payload(conv.to_payload(Line("x")), Line) == Line("x")


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as err:
        return err


def test_application_error_round_trip() -> None:
    err = _raised(ApplicationError("boom", {"k": 1}, 2, type="Bad", non_retryable=True))
    failure = exception_to_failure(err)
    assert failure["failure_type"] == "ApplicationFailure"
    assert failure["source"] == "cadenza-python"
    assert "boom" in failure["stack_trace"]
    back = failure_to_exception(failure)
    assert isinstance(back, ApplicationError)
    assert (back.message, back.type, back.non_retryable, list(back.details)) == (
        "boom",
        "Bad",
        True,
        [{"k": 1}, 2],
    )
    assert back.failure == failure
    assert back.failure is not None and back.failure["message"] == back.failure.message == "boom"


def test_unknown_exception_becomes_application_error_named_after_class() -> None:
    back = failure_to_exception(exception_to_failure(_raised(KeyError("k"))))
    assert isinstance(back, ApplicationError)
    assert back.type == "KeyError"


def test_timeout_canceled_terminated_round_trip() -> None:
    timeout = failure_to_exception(
        exception_to_failure(TimeoutError("hb", type=TimeoutType.HEARTBEAT, last_heartbeat_details=["50%"]))
    )
    assert isinstance(timeout, TimeoutError)
    assert timeout.type is TimeoutType.HEARTBEAT and list(timeout.last_heartbeat_details) == ["50%"]
    assert isinstance(failure_to_exception(exception_to_failure(CanceledError("c", 1))), CanceledError)
    assert isinstance(failure_to_exception(exception_to_failure(TerminatedError("t"))), TerminatedError)


def test_activity_and_child_errors_keep_fields_and_cause() -> None:
    err = ActivityError(
        "Activity task failed",
        activity_type="greet",
        activity_id="1",
        scheduled_event_id=5,
        started_event_id=6,
        retry_state="MAXIMUM_ATTEMPTS_REACHED",
        cause=ApplicationError("inner", type="X"),
    )
    back = failure_to_exception(exception_to_failure(err))
    assert isinstance(back, ActivityError)
    assert (back.activity_type, back.activity_id, back.scheduled_event_id, back.started_event_id) == (
        "greet",
        "1",
        5,
        6,
    )
    assert back.retry_state == "MAXIMUM_ATTEMPTS_REACHED"
    assert isinstance(back.cause, ApplicationError) and back.cause.type == "X"

    child = ChildWorkflowError(
        "child failed",
        namespace="ns",
        workflow_id="c",
        run_id="r",
        workflow_type="T",
        initiated_event_id=3,
        started_event_id=4,
        retry_state=None,
        cause=TimeoutError("t", type=TimeoutType.START_TO_CLOSE),
    )
    back_child = failure_to_exception(exception_to_failure(child))
    assert isinstance(back_child, ChildWorkflowError)
    assert (back_child.workflow_id, back_child.workflow_type, back_child.initiated_event_id) == ("c", "T", 3)
    assert isinstance(back_child.cause, TimeoutError)


def test_python_cause_chain_is_kept() -> None:
    try:
        try:
            raise ValueError("root")
        except ValueError as inner:
            raise ApplicationError("outer") from inner
    except ApplicationError as err:
        failure = exception_to_failure(err)
    assert failure["cause"]["application_type"] == "ValueError"
    back = failure_to_exception(failure)
    assert isinstance(back.__cause__, ApplicationError) and back.__cause__.message == "root"
