"""``services.frontend.limits`` in the server config: the frontend's static overload limits.

    services:
      frontend:
        rpc: {grpcPort: 7233}
        limits:
          rps: 2400                      # frontend.rps: API requests/s on this frontend, all namespaces
          namespaceRPS: 1200             # frontend.namespaceRPS: API requests/s of one namespace
          namespaceCount: 1200           # frontend.namespaceCount: open long polls of one namespace
          namespaceCountPerIdentity: 600 # frontend.namespaceCountPerIdentity: ... of one client in it

Each key has the name of its dynamic config key after ``frontend.``; a dynamic config entry that
matches a request overrides the value here, while the server runs. 0 turns a limit off. What each
limit counts, and why polls and starts are limited apart, is in ``cadenza.engine.ratelimit``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from cadenza.engine.ratelimit import FrontendLimits

_DEFAULTS = FrontendLimits()
NonNegative = Annotated[int, Field(ge=0, le=1_000_000)]


class FrontendLimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rps: NonNegative = _DEFAULTS.rps
    namespaceRPS: NonNegative = _DEFAULTS.namespace_rps
    namespaceCount: NonNegative = _DEFAULTS.namespace_count
    namespaceCountPerIdentity: NonNegative = _DEFAULTS.namespace_count_per_identity

    def to_engine(self) -> FrontendLimits:
        return FrontendLimits(
            rps=self.rps,
            namespace_rps=self.namespaceRPS,
            namespace_count=self.namespaceCount,
            namespace_count_per_identity=self.namespaceCountPerIdentity,
        )
