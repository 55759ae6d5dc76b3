"""Instants as the visibility layer handles them: ``int`` microseconds since the Unix epoch (UTC).

Queries and payloads carry RFC 3339 text; stores keep integers (SQLite) or RFC 3339 text with six
fractional digits (Elasticsearch ``date_nanos``), so every conversion goes through this module and
both stores see the very same instants.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# RFC 3339 section 5.6 (date-time), with the lower-case and space separators it allows.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def parse_rfc3339(text: str) -> int | None:
    """Microseconds since the epoch for an RFC 3339 date-time, or None when ``text`` is not one.

    Fractions finer than a microsecond are truncated, as the engine's clock has microseconds.
    """
    m = _RFC3339.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = (m.group(7) or "")[:6].ljust(6, "0")
    zone = m.group(8)
    offset = timedelta(0)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        naive = datetime(year, month, day, hour, minute, second, int(fraction))
        # An offset can carry a date at either end of the calendar past year 1 or 9999 in UTC.
        return datetime_to_micros(naive.replace(tzinfo=UTC) - offset)
    except (ValueError, OverflowError):
        return None


def datetime_to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


MIN_MICROS = datetime_to_micros(datetime.min.replace(tzinfo=UTC))
"""The earliest instant (0001-01-01T00:00:00Z) that converts back to a datetime and to RFC 3339."""
MAX_MICROS = datetime_to_micros(datetime.max.replace(tzinfo=UTC))
"""The latest one (9999-12-31T23:59:59.999999Z)."""


def micros_to_datetime(micros: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def format_rfc3339(micros: int) -> str:
    """RFC 3339 text in UTC with exactly six fractional digits, e.g. ``2026-11-01T00:00:00.000000Z``."""
    return micros_to_datetime(micros).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
