"""temporalio's ``temporalio.api.common.v1.Payload``: here a payload dict that also has the
attributes ``metadata`` and ``data`` (see ``cadenza.sdk.payload_converter.Payload``)."""

from cadenza.sdk.payload_converter import Payload

__all__ = ["Payload"]
