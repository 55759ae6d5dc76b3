"""Archival: where a closed run goes when its namespace's retention is over.

As the anchors do it, the archive is addressed by a URI per namespace (one for history, one for
visibility records) and written by a provider the cluster config enables. The only provider is
``filestore`` (``file://`` URIs): one file per run, written atomically, with the configured file
and directory modes. ``history.retention`` archives (when the namespace archives) and then deletes.
"""

from cadenza.engine.archival.filestore import ArchiveNotFoundError, FilestoreArchiver
from cadenza.engine.archival.settings import (
    ArchivalError,
    ArchivalSettings,
    ProviderSettings,
    archive_dir,
    check_state,
)

__all__ = [
    "ArchivalError",
    "ArchivalSettings",
    "ArchiveNotFoundError",
    "FilestoreArchiver",
    "ProviderSettings",
    "archive_dir",
    "check_state",
]
