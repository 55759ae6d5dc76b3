"""The cluster's archival settings and the namespace-level URIs they apply to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

ENABLED = "enabled"
DISABLED = "disabled"
STATES = (ENABLED, DISABLED)


class ArchivalError(ValueError):
    """A bad archival setting or URI; the message names the key and the value."""


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One kind of archival (history or visibility) as the cluster enables it."""

    enabled: bool = False
    """The cluster archives this kind at all (``archival.<kind>.state: enabled``)."""
    enable_read: bool = False
    """Archived records may be read back through the frontend (``enableRead``)."""
    file_mode: int = 0o666
    """Mode of archived files (``provider.filestore.fileMode``)."""
    dir_mode: int = 0o766
    """Mode of the directories made for them (``provider.filestore.dirMode``)."""


@dataclass(frozen=True, slots=True)
class ArchivalSettings:
    """The cluster's archival config and the defaults a namespace registered without its own
    archival settings gets (``namespaceDefaults.archival``)."""

    history: ProviderSettings = ProviderSettings()
    visibility: ProviderSettings = ProviderSettings()
    default_history_state: str = DISABLED
    default_history_uri: str = ""
    default_visibility_state: str = DISABLED
    default_visibility_uri: str = ""


def check_state(key: str, value: str) -> str:
    """``value`` normalised to ``enabled``/``disabled`` (``""``: not set); raises naming ``key``."""
    v = value.strip().lower()
    if v and v not in STATES:
        raise ArchivalError(f"{key}: {value!r} is not an archival state; use enabled or disabled")
    return v


def archive_dir(key: str, uri: str) -> Path:
    """The directory a ``file://`` archival URI names; raises naming ``key`` and the value for any
    other scheme (filestore is the only provider) or a URI without an absolute path."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise ArchivalError(
            f"{key}: {uri!r} is not a file:// URI; filestore is the only archival provider "
            "(write file:///absolute/path)"
        )
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ArchivalError(f"{key}: {uri!r} must name an absolute path, as file:///var/archive")
    return Path(unquote(parts.path))


def parse_mode(key: str, value: str | int) -> int:
    """An octal mode as the anchors' config writes it (``"0666"``); raises naming ``key``."""
    try:
        mode = value if isinstance(value, int) else int(str(value), 8)
    except ValueError:
        raise ArchivalError(f'{key}: {value!r} is not an octal file mode such as "0666"') from None
    if not 0 <= mode <= 0o7777:
        raise ArchivalError(f"{key}: {value!r} is not a file mode (0000-7777 octal)")
    return mode
