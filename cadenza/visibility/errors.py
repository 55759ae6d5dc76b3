"""Errors of the visibility layer: bad queries, bad search attributes, bad page tokens, store failures.

They derive from :class:`VisibilityError` (itself a :class:`~cadenza.sdk.exceptions.CadenzaError`);
the ones caused by user input also derive from :class:`ValueError` so a frontend can map them to
"invalid argument" without knowing each one.
"""

from __future__ import annotations

from cadenza.sdk.exceptions import CadenzaError


class VisibilityError(CadenzaError):
    """Root of every error raised by ``cadenza.visibility``."""


class QueryError(VisibilityError, ValueError):
    """A list query that cannot be parsed or does not type-check.

    The message names the offending token and its position (0-based character offset in the query);
    both are also available as attributes for APIs that want to point at the spot.
    """

    def __init__(self, message: str, *, query: str, position: int, token: str | None = None) -> None:
        self.query = query
        """The query text as given."""
        self.position = position
        """0-based character offset of the offending token."""
        self.token = token
        """The offending token's text, when there is one (None at end of input)."""
        super().__init__(f"{message} (at position {position} of the query)")


class SearchAttributeError(VisibilityError, ValueError):
    """An unknown search attribute, a bad name, a re-typing, or a value of the wrong type."""


class InvalidPageTokenError(VisibilityError, ValueError):
    """A page token that was not produced by a list/scan with the same ordering."""


class VisibilityStoreError(VisibilityError):
    """The backing store failed in a way the caller may retry (server error, lost connection)."""
