"""Conversion between Python values and payloads, and between exceptions and failures.

A payload is ``{"metadata": {str: bytes}, "data": bytes}`` (see ``cadenza.schemas.events``). The
default converter writes ``None`` as ``binary/null``, ``bytes`` as ``binary/plain`` and everything
else as ``json/plain``; dataclasses, pydantic v2 models, enums, datetimes and UUIDs are encoded
through pydantic's JSON-able form and decoded back when a type hint is given.

A :class:`PayloadCodec` transforms whole payload lists after encoding and before decoding
(compression, encryption); it never sees Python values.

A converter of one's own (temporalio's ``payload_converter_class``) is a ``PayloadConverter``
(``cadenza.sdk.payload_converter``), usually a ``CompositePayloadConverter`` with an
``EncodingPayloadConverter`` of one's own before the defaults. The default class keeps the fast path
below, which writes the same bytes as ``DefaultPayloadConverter``.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar, Protocol

from cadenza.sdk.exceptions import (
    ActivityError,
    ApplicationError,
    ApplicationErrorCategory,
    CanceledError,
    ChildWorkflowError,
    FailureError,
    PayloadDecodeError,
    PayloadEncodeError,
    ServerError,
    TerminatedError,
    TimeoutError,
    TimeoutType,
)
from cadenza.sdk.payload_converter import (
    ENCODING_BINARY_NULL,
    ENCODING_BINARY_PLAIN,
    ENCODING_JSON_PLAIN,
    DefaultPayloadConverter,
    PayloadConverter,
    decode_json,
    encode_json,
    plain,
)

__all__ = [
    "ENCODING_BINARY_NULL",
    "ENCODING_BINARY_PLAIN",
    "ENCODING_JSON_PLAIN",
    "FAILURE_SOURCE",
    "DataConverter",
    "FailureType",
    "PayloadCodec",
    "RawValue",
    "default_converter",
    "exception_to_failure",
    "failure_to_exception",
]

FAILURE_SOURCE = "cadenza-python"
"""Value of a failure's ``source`` when this SDK built it."""

Payload = dict[str, Any]


class FailureType:
    """Values of a failure's ``failure_type`` (Temporal's failure-info names)."""

    APPLICATION = "ApplicationFailure"
    TIMEOUT = "TimeoutFailure"
    CANCELED = "CanceledFailure"
    TERMINATED = "TerminatedFailure"
    SERVER = "ServerFailure"
    ACTIVITY = "ActivityFailure"
    CHILD_WORKFLOW = "ChildWorkflowExecutionFailure"


@dataclasses.dataclass(frozen=True)
class RawValue:
    """A payload passed through the converter untouched (temporalio's ``RawValue``): as an argument or
    result it is sent as is; as a type hint, the payload comes back wrapped, undecoded (what dynamic
    workflows, activities, signals and queries receive)."""

    payload: Payload


class PayloadCodec(Protocol):
    """Transforms encoded payload lists, e.g. to compress or encrypt them.

    ``decode(encode(p)) == p`` must hold. Both are synchronous: workflow code calls them.
    """

    def encode(self, payloads: list[Payload]) -> list[Payload]:
        """Transform payloads on their way out."""
        ...

    def decode(self, payloads: list[Payload]) -> list[Payload]:
        """Undo :meth:`encode`."""
        ...


@dataclasses.dataclass(frozen=True, eq=False)
class DataConverter:
    """Converts values to payloads and back, and exceptions to failures and back. A dataclass, as
    temporalio's: ``dataclasses.replace(converter.default(), payload_converter_class=...)`` works."""

    payload_converter_class: type[PayloadConverter] = DefaultPayloadConverter
    """What turns values into payloads (instantiated once, as ``payload_converter``)."""
    payload_codec: PayloadCodec | None = None
    """Optional transformation applied to every encoded payload list."""
    payload_converter: PayloadConverter = dataclasses.field(init=False, repr=False)

    default: ClassVar[DataConverter]
    """The default converter (temporalio's ``DataConverter.default``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload_converter", self.payload_converter_class())
        # The default class takes the fast path below (the same bytes, without the composite's
        # per-value dispatch): the hot path of every argument and result.
        object.__setattr__(self, "_custom", self.payload_converter_class is not DefaultPayloadConverter)

    # -- values ------------------------------------------------------------------------------------

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        """Encode positional values; an unencodable one raises :class:`PayloadEncodeError`."""
        payloads = [self._encode(value, index) for index, value in enumerate(values)]
        if self.payload_codec is not None:
            payloads = self.payload_codec.encode(payloads)
        return payloads

    def from_payloads(
        self, payloads: list[Payload] | None, type_hints: Sequence[Any] | None = None
    ) -> list[Any]:
        """Decode payloads; ``type_hints[i]`` (if given) shapes value ``i``."""
        if not payloads:
            return []
        if self.payload_codec is not None:
            payloads = self.payload_codec.decode(list(payloads))
        hints = type_hints or ()
        return [
            self._decode(payload, hints[i] if i < len(hints) else None, i)
            for i, payload in enumerate(payloads)
        ]

    def to_payload(self, value: Any) -> Payload:
        """Encode one value."""
        return self.to_payloads([value])[0]

    def from_payload(self, payload: Payload, type_hint: Any = None) -> Any:
        """Decode one value."""
        return self.from_payloads([payload], [type_hint])[0]

    def _encode(self, value: Any, index: int) -> Payload:
        if isinstance(value, RawValue):
            return plain(value.payload)
        if self._custom:  # type: ignore[attr-defined]
            return self._encode_custom(value, index)
        if value is None:
            return {"metadata": {"encoding": ENCODING_BINARY_NULL}, "data": b""}
        if isinstance(value, bytes | bytearray | memoryview):
            return {"metadata": {"encoding": ENCODING_BINARY_PLAIN}, "data": bytes(value)}
        return {"metadata": {"encoding": ENCODING_JSON_PLAIN}, "data": encode_json(value, index)}

    def _encode_custom(self, value: Any, index: int) -> Payload:
        try:
            return plain(self.payload_converter.to_payloads([value])[0])
        except PayloadEncodeError as err:
            raise PayloadEncodeError(
                str(err).replace("argument 0", f"argument {index}", 1), index=index, value_type=type(value)
            ) from err
        except Exception as err:
            raise PayloadEncodeError(
                f"Cannot encode argument {index} of type {type(value).__qualname__} with "
                f"{self.payload_converter_class.__qualname__}: {err}",
                index=index,
                value_type=type(value),
            ) from err

    def _decode(self, payload: Payload, hint: Any, index: int) -> Any:
        if hint is RawValue:
            return RawValue(payload)
        if self._custom:  # type: ignore[attr-defined]
            return self._decode_custom(payload, hint, index)
        encoding = payload.get("metadata", {}).get("encoding")
        if encoding == ENCODING_JSON_PLAIN:
            return decode_json(payload["data"], hint, index)
        if encoding == ENCODING_BINARY_NULL:
            return None
        if encoding == ENCODING_BINARY_PLAIN:
            return bytes(payload["data"])
        raise PayloadDecodeError(f"Payload {index} has unknown encoding {encoding!r}")

    def _decode_custom(self, payload: Payload, hint: Any, index: int) -> Any:
        from cadenza.sdk.payload_converter import Payload as PayloadMessage

        try:
            return self.payload_converter.from_payloads([PayloadMessage.of(payload)], [hint])[0]
        except PayloadDecodeError as err:
            raise PayloadDecodeError(str(err).replace("Payload 0", f"Payload {index}", 1)) from err
        except Exception as err:
            raise PayloadDecodeError(
                f"Cannot decode payload {index} with {self.payload_converter_class.__qualname__}: {err}"
            ) from err

    # -- failures ----------------------------------------------------------------------------------

    def exception_to_failure(self, exc: BaseException) -> dict[str, Any]:
        """Build the failure dict for ``exc``, following ``__cause__`` into ``cause``.

        Exceptions that are not :class:`FailureError` become application failures whose type is the
        exception's class name, as temporalio does.
        """
        failure: dict[str, Any] = {
            "message": str(exc) if not isinstance(exc, FailureError) else exc.message,
            "source": FAILURE_SOURCE,
            "stack_trace": _stack_trace(exc),
            "failure_type": FailureType.APPLICATION,
            "application_type": None,
            "non_retryable": False,
            "details": None,
            "timeout_type": None,
            "cause": None,
        }
        if isinstance(exc, ApplicationError):
            failure["application_type"] = exc.type
            failure["non_retryable"] = exc.non_retryable
            failure["details"] = self.to_payloads(exc.details) if exc.details else None
            if exc.next_retry_delay is not None:
                failure["next_retry_delay_ms"] = max(0, round(exc.next_retry_delay.total_seconds() * 1000))
            if exc.category:
                failure["category"] = int(exc.category)
        elif isinstance(exc, TimeoutError):
            failure["failure_type"] = FailureType.TIMEOUT
            failure["timeout_type"] = exc.type.value if exc.type else None
            details = exc.last_heartbeat_details
            failure["details"] = self.to_payloads(details) if details else None
        elif isinstance(exc, CanceledError):
            failure["failure_type"] = FailureType.CANCELED
            failure["details"] = self.to_payloads(exc.details) if exc.details else None
        elif isinstance(exc, TerminatedError):
            failure["failure_type"] = FailureType.TERMINATED
            failure["details"] = self.to_payloads(exc.details) if exc.details else None
        elif isinstance(exc, ServerError):
            failure["failure_type"] = FailureType.SERVER
            failure["non_retryable"] = exc.non_retryable
        elif isinstance(exc, ActivityError):
            # The failure dict has no activity-specific fields, so they ride in one JSON detail.
            failure["failure_type"] = FailureType.ACTIVITY
            failure["details"] = self.to_payloads(
                [
                    {
                        "activity_type": exc.activity_type,
                        "activity_id": exc.activity_id,
                        "scheduled_event_id": exc.scheduled_event_id,
                        "started_event_id": exc.started_event_id,
                        "retry_state": exc.retry_state,
                    }
                ]
            )
        elif isinstance(exc, ChildWorkflowError):
            failure["failure_type"] = FailureType.CHILD_WORKFLOW
            failure["details"] = self.to_payloads(
                [
                    {
                        "namespace": exc.namespace,
                        "workflow_id": exc.workflow_id,
                        "run_id": exc.run_id,
                        "workflow_type": exc.workflow_type,
                        "initiated_event_id": exc.initiated_event_id,
                        "started_event_id": exc.started_event_id,
                        "retry_state": exc.retry_state,
                    }
                ]
            )
        elif isinstance(exc, FailureError):
            failure["application_type"] = type(exc).__name__
        else:
            failure["application_type"] = type(exc).__name__
        if exc.__cause__ is not None:
            failure["cause"] = self.exception_to_failure(exc.__cause__)
        return failure

    def failure_to_exception(self, failure: dict[str, Any]) -> FailureError:
        """Rebuild the exception a failure dict describes, with its cause chain."""
        cause = failure.get("cause")
        cause_exc = self.failure_to_exception(cause) if cause else None
        message = failure.get("message") or ""
        details = self._failure_details(failure)
        kind = failure.get("failure_type") or FailureType.APPLICATION
        exc: FailureError
        if kind == FailureType.TIMEOUT:
            raw = failure.get("timeout_type")
            timeout_type = TimeoutType(str(raw)) if raw in TimeoutType.__members__ else None
            exc = TimeoutError(message, type=timeout_type, last_heartbeat_details=details, failure=failure)
        elif kind == FailureType.CANCELED:
            exc = CanceledError(message, *details, failure=failure)
        elif kind == FailureType.TERMINATED:
            exc = TerminatedError(message, *details, failure=failure)
        elif kind == FailureType.SERVER:
            exc = ServerError(message, non_retryable=bool(failure.get("non_retryable")), failure=failure)
        elif kind == FailureType.ACTIVITY:
            info = details[0] if details and isinstance(details[0], dict) else {}
            exc = ActivityError(
                message,
                activity_type=info.get("activity_type", ""),
                activity_id=info.get("activity_id", ""),
                scheduled_event_id=info.get("scheduled_event_id", 0),
                started_event_id=info.get("started_event_id", 0),
                retry_state=info.get("retry_state"),
                cause=cause_exc,
                failure=failure,
            )
        elif kind == FailureType.CHILD_WORKFLOW:
            info = details[0] if details and isinstance(details[0], dict) else {}
            exc = ChildWorkflowError(
                message,
                namespace=info.get("namespace", ""),
                workflow_id=info.get("workflow_id", ""),
                run_id=info.get("run_id", ""),
                workflow_type=info.get("workflow_type", ""),
                initiated_event_id=info.get("initiated_event_id", 0),
                started_event_id=info.get("started_event_id", 0),
                retry_state=info.get("retry_state"),
                cause=cause_exc,
                failure=failure,
            )
        else:
            delay_ms = failure.get("next_retry_delay_ms")
            category = failure.get("category") or 0
            exc = ApplicationError(
                message,
                *details,
                type=failure.get("application_type"),
                non_retryable=bool(failure.get("non_retryable")),
                next_retry_delay=timedelta(milliseconds=delay_ms) if delay_ms is not None else None,
                category=(
                    ApplicationErrorCategory(category)
                    if category in ApplicationErrorCategory._value2member_map_
                    else ApplicationErrorCategory.UNSPECIFIED
                ),
                failure=failure,
            )
        if cause_exc is not None:
            exc.__cause__ = cause_exc
        return exc

    def _failure_details(self, failure: dict[str, Any]) -> list[Any]:
        try:
            return self.from_payloads(failure.get("details"))
        except PayloadDecodeError:
            # Details are informational; an undecodable one must not hide the failure itself.
            return []


def _stack_trace(exc: BaseException) -> str:
    """Where ``exc`` was raised; for one rebuilt from a failure (and raised on), where the
    original was."""
    if isinstance(exc, FailureError) and exc.failure is not None and exc.failure.stack_trace:
        return exc.failure.stack_trace
    return "".join(traceback.format_exception(exc, chain=False)) if exc.__traceback__ else ""


_DEFAULT = DataConverter()
DataConverter.default = _DEFAULT


def default_converter() -> DataConverter:
    """The shared JSON converter without a codec."""
    return _DEFAULT


def exception_to_failure(exc: BaseException) -> dict[str, Any]:
    """:meth:`DataConverter.exception_to_failure` with the default converter."""
    return _DEFAULT.exception_to_failure(exc)


def failure_to_exception(failure: dict[str, Any]) -> FailureError:
    """:meth:`DataConverter.failure_to_exception` with the default converter."""
    return _DEFAULT.failure_to_exception(failure)
