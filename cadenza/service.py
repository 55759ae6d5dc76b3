"""Connection settings and RPC errors where temporalio keeps them (``temporalio.service``):
``TLSConfig`` for ``Client.connect(tls=...)`` and ``RPCError``."""

from cadenza.sdk.client import TLSConfig
from cadenza.sdk.exceptions import RPCError

__all__ = ["RPCError", "TLSConfig"]
