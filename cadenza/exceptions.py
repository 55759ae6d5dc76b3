"""Every error the SDK raises (see ``cadenza.sdk.exceptions``)."""

from cadenza.sdk.exceptions import *  # noqa: F403
from cadenza.sdk.exceptions import __all__ as __all__
