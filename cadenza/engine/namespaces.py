"""Namespaces: registration, lookup by name or id (cached), update, and replicated changes.

A *local* namespace lives in one cluster; its events carry version 0. A *global* namespace lists
the clusters it is replicated to, one of which is active; its ``failover_version`` (owned by the
active cluster, see ``cadenza.replication.cluster``) is stamped on every event written in it, and
only the cluster that owns that version may write. Global namespaces are registered on the master
cluster; every change of one (``config_version`` + 1) is handed to ``on_change``, which publishes
it to the other clusters, and arrives there through ``apply_replicated``.

The cache is complete: ``load`` reads every namespace at start-up, and ``refresh`` (run
periodically by the host) picks up changes other processes made to the same store, so the write
path's ``write_version`` never needs a read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime

from cadenza.engine.archival.settings import (
    DISABLED,
    ENABLED,
    ArchivalError,
    ArchivalSettings,
    archive_dir,
    check_state,
)
from cadenza.engine.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NamespaceNotActiveError,
    NamespaceNotFoundError,
)
from cadenza.engine.persistence import errors as perr
from cadenza.engine.persistence.protocols import NamespaceRow, NamespaceStore
from cadenza.replication.cluster import ClusterMetadata
from cadenza.schemas.service import NamespaceInfo

log = logging.getLogger("cadenza.namespaces")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")

ChangeListener = Callable[[NamespaceInfo], Awaitable[None]]


class ReplicatedNamespaceError(ValueError):
    """A replicated namespace change that can never be applied (the message names why)."""


class NamespaceRegistry:
    def __init__(
        self,
        store: NamespaceStore,
        *,
        cluster_name: str = "active",
        cluster: ClusterMetadata | None = None,
    ) -> None:
        self._store = store
        self.cluster = cluster or ClusterMetadata.single(cluster_name)
        self._cluster = self.cluster.current_cluster_name
        self._by_name: dict[str, NamespaceInfo] = {}
        self._by_id: dict[str, NamespaceInfo] = {}
        self._versions: dict[str, int] = {}
        self.on_change: ChangeListener | None = None
        """Called after a change of a global namespace made here is stored (replication)."""
        self._handovers: dict[str, asyncio.Event] = {}
        """Namespaces in a graceful failover: their writes wait (see ``wait_writable``)."""
        self.archival = ArchivalSettings()
        """The cluster's archival config: what a namespace may enable, and the defaults it gets."""
        self.on_activated: ChangeListener | None = None
        """Called when a global namespace becomes active in this cluster (a failover to it, made
        here or replicated): the runs this cluster now owns need their tasks (see ``Host``)."""

    # -- the write path's view -------------------------------------------------------------------

    def cached_by_id(self, namespace_id: str) -> NamespaceInfo | None:
        return self._by_id.get(namespace_id)

    def cached_by_id_or_name(self, key: str) -> NamespaceInfo | None:
        return self._by_id.get(key) or self._by_name.get(key)

    def replicates(self, namespace_id: str) -> bool:
        """Whether writes to the namespace go to the other clusters (a global namespace with more
        than this cluster in it)."""
        info = self._by_id.get(namespace_id)
        return info is not None and info.is_global and len(info.clusters) > 1

    def begin_handover(self, namespace_id: str) -> None:
        """A graceful failover starts: writes to the namespace wait until ``end_handover``."""
        self._handovers.setdefault(namespace_id, asyncio.Event())

    def end_handover(self, namespace_id: str) -> None:
        event = self._handovers.pop(namespace_id, None)
        if event is not None:
            event.set()

    def in_handover(self, namespace_id: str) -> bool:
        return namespace_id in self._handovers

    async def wait_writable(self, namespace_id: str, timeout_s: float = 60.0) -> None:
        """Holds a write while its namespace is handed over to another cluster, so it is not
        refused meanwhile; once the switch is made it is refused as not active here (and
        forwarded by the frontend) or, if the failover fell through, goes ahead."""
        event = self._handovers.get(namespace_id)
        if event is not None:
            try:
                await asyncio.wait_for(event.wait(), timeout_s)
            except TimeoutError:
                pass

    def write_version(self, namespace_id: str, last_write_version: int = 0) -> int:
        """The failover version a write in the namespace carries; ``NamespaceNotActiveError`` when
        this cluster may not write: the namespace is active elsewhere, or the run was last written
        with a newer version than this cluster's (it failed over and back, and the newer writes
        have not arrived yet)."""
        info = self._by_id.get(namespace_id)
        if info is None or not info.is_global:
            return 0
        if info.active_cluster != self._cluster:
            raise NamespaceNotActiveError(info.name, self._cluster, info.active_cluster)
        if last_write_version > info.failover_version:
            raise NamespaceNotActiveError(
                info.name,
                self._cluster,
                self.cluster.cluster_for_version(last_write_version),
                why=f" (the run was last written with version {last_write_version}, "
                f"above this cluster's {info.failover_version})",
            )
        return info.failover_version

    # -- reads -----------------------------------------------------------------------------------

    async def load(self, *, notify: bool = False) -> None:
        """Reads every namespace into the cache (start-up, and ``refresh``)."""
        token: bytes | None = None
        while True:
            rows, token = await self._store.list_namespaces(100, token)
            for row in rows:
                if self._versions.get(row.id, -1) != row.notification_version:
                    old = self._by_id.get(row.id)
                    info = _decode(row)
                    self._remember(info, row.notification_version)
                    if notify and old is not None and old.active_cluster != info.active_cluster:
                        await self._activated(info)
            if not token:
                return

    async def refresh(self) -> None:
        """Picks up changes another process made to the store (a failover made there)."""
        await self.load(notify=True)

    async def get(self, name: str) -> NamespaceInfo:
        info = self._by_name.get(name)
        if info is None:
            try:
                row = await self._store.get_namespace(name=name)
            except perr.EntityNotFoundError:
                raise NamespaceNotFoundError(f"namespace {name!r} not found", namespace=name) from None
            info = _decode(row)
            self._remember(info, row.notification_version)
        return info

    async def get_by_id(self, namespace_id: str) -> NamespaceInfo:
        info = self._by_id.get(namespace_id)
        if info is None:
            try:
                row = await self._store.get_namespace(id=namespace_id)
            except perr.EntityNotFoundError:
                raise NamespaceNotFoundError(f"namespace id {namespace_id!r} not found") from None
            info = _decode(row)
            self._remember(info, row.notification_version)
        return info

    async def list(self) -> list[NamespaceInfo]:
        out: list[NamespaceInfo] = []
        token: bytes | None = None
        while True:
            rows, token = await self._store.list_namespaces(100, token)
            out.extend(_decode(r) for r in rows)
            if not token:
                return out

    # -- changes made here -----------------------------------------------------------------------

    async def register(self, info: NamespaceInfo) -> NamespaceInfo:
        if not _NAME.match(info.name):
            raise InvalidArgumentError(
                f"namespace name {info.name!r} is invalid: use 1-255 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if info.retention_days < 0:
            raise InvalidArgumentError(f"retention_days must not be negative (got {info.retention_days})")
        self._check_archival(info, None)
        info.id = info.id or str(uuid.uuid4())
        info.clusters = list(dict.fromkeys(info.clusters or [self._cluster]))
        info.active_cluster = info.active_cluster or (
            self._cluster if self._cluster in info.clusters else info.clusters[0]
        )
        if info.active_cluster not in info.clusters:
            raise InvalidArgumentError(
                f"active cluster {info.active_cluster!r} is not among the clusters {info.clusters}"
            )
        if info.is_global:
            self._check_global(info)
            info.failover_version = self.cluster.initial_version(info.active_cluster)
            info.config_version = 1
        elif info.clusters != [self._cluster] or info.active_cluster != self._cluster:
            raise InvalidArgumentError(
                f"a local namespace lives in this cluster ({self._cluster!r}) only; got clusters "
                f"{info.clusters} with active cluster {info.active_cluster!r} (register it with "
                "--global-namespace true to replicate it)"
            )
        try:
            await self._store.create_namespace(
                NamespaceRow(info.id, info.name, _encode(info), is_global=info.is_global)
            )
        except perr.AlreadyExistsError:
            raise AlreadyExistsError(f"namespace {info.name!r} already exists") from None
        self._remember(info, 0)
        await self._changed(info)
        return info

    def _check_archival(self, info: NamespaceInfo, current: NamespaceInfo | None) -> None:
        """Normalises and checks the namespace's archival states and URIs before anything changes.
        At register an unset state takes the cluster's default (when the cluster archives that
        kind at all), at update the current value; a URI, once set, is kept (archived runs would
        otherwise be split between two places), as the anchors rule."""
        a = self.archival
        kinds = (
            ("history", a.history.enabled, a.default_history_state, a.default_history_uri),
            ("visibility", a.visibility.enabled, a.default_visibility_state, a.default_visibility_uri),
        )
        for kind, cluster_enabled, default_state, default_uri in kinds:
            state_field, uri_field = f"{kind}_archival_state", f"{kind}_archival_uri"
            try:
                state = check_state(state_field, getattr(info, state_field))
                uri = getattr(info, uri_field).strip()
                if uri:
                    archive_dir(uri_field, uri)
            except ArchivalError as e:
                raise InvalidArgumentError(str(e)) from None
            if current is not None:
                old_uri = getattr(current, uri_field)
                if uri and old_uri and uri != old_uri:
                    raise InvalidArgumentError(
                        f"{uri_field}: {old_uri!r} cannot be changed once set (got {uri!r})"
                    )
                state = state or getattr(current, state_field) or DISABLED
                uri = uri or old_uri
            elif not state:
                state = default_state if cluster_enabled else DISABLED
                uri = uri or (default_uri if cluster_enabled else "")
            else:
                uri = uri or default_uri
            if (
                state == ENABLED
                and not cluster_enabled
                and (current is None or getattr(current, state_field) != ENABLED)
            ):
                raise InvalidArgumentError(
                    f"{state_field}: {kind} archival is not enabled on cluster {self._cluster!r} "
                    f"(archival.{kind}.state in the server config)"
                )
            if state == ENABLED and not uri:
                raise InvalidArgumentError(
                    f"{uri_field}: required to enable {kind} archival (a file:///absolute/dir URI)"
                )
            setattr(info, state_field, state)
            setattr(info, uri_field, uri)

    def _check_global(self, info: NamespaceInfo) -> None:
        c = self.cluster
        if not c.enable_global_namespace:
            raise FailedPreconditionError(
                f"cluster {self._cluster!r} does not allow global namespaces "
                "(clusterMetadata.enableGlobalNamespace is false)"
            )
        if not c.is_master:
            raise FailedPreconditionError(
                f"global namespaces are registered on the master cluster {c.master_cluster_name!r}, "
                f"not on {self._cluster!r}"
            )
        unknown = [name for name in info.clusters if name not in c.clusters]
        if unknown:
            raise InvalidArgumentError(
                f"unknown cluster(s) {', '.join(map(repr, unknown))}; this deployment has "
                f"{', '.join(c.enabled_clusters())}"
            )
        if self._cluster not in info.clusters:
            raise InvalidArgumentError(
                f"a global namespace registered on cluster {self._cluster!r} must list it among "
                f"its clusters (got {info.clusters})"
            )

    async def update(self, info: NamespaceInfo, *, graceful: bool = False) -> NamespaceInfo:
        current = await self.get(info.name)
        info.id = current.id
        if info.retention_days < 0:
            raise InvalidArgumentError(f"retention_days must not be negative (got {info.retention_days})")
        self._check_archival(info, current)
        if current.is_global:
            info.is_global = True
            info.clusters = list(dict.fromkeys(info.clusters or current.clusters))
            info.active_cluster = info.active_cluster or current.active_cluster
            if info.active_cluster not in info.clusters:
                raise InvalidArgumentError(
                    f"active cluster {info.active_cluster!r} is not among the clusters {info.clusters}"
                )
            self._check_global_update(current, info)
            info.failover_version = current.failover_version
            info.failover_history = list(current.failover_history)
            if info.active_cluster != current.active_cluster:
                info.failover_version = self.cluster.next_failover_version(
                    info.active_cluster, current.failover_version
                )
                info.failover_history = _with_failover(current, info, graceful)
            info.config_version = current.config_version + 1
        elif info.is_global:
            raise InvalidArgumentError(f"namespace {info.name!r} is local; it cannot become global")
        await self._store_update(info)
        await self._changed(info)
        if current.is_global and info.active_cluster != current.active_cluster:
            await self._activated(info)
        return info

    def _check_global_update(self, current: NamespaceInfo, info: NamespaceInfo) -> None:
        unknown = [name for name in info.clusters if name not in self.cluster.clusters]
        if unknown:
            raise InvalidArgumentError(f"unknown cluster(s) {', '.join(map(repr, unknown))}")
        if info.active_cluster != current.active_cluster and current.active_cluster != self._cluster:
            # A failover is decided where the namespace is active (or forced there): a standby's
            # copy may be behind, and its version arithmetic would start from a stale version.
            raise NamespaceNotActiveError(
                info.name,
                self._cluster,
                current.active_cluster,
                why="; change its active cluster there",
            )

    async def force_active(self, name: str, cluster: str) -> NamespaceInfo:
        """Makes ``cluster`` the namespace's active cluster in THIS cluster's record only, with the
        next failover version, and replicates nothing: the operator's last resort when the active
        cluster is unreachable. Clusters that disagree about the active one both accept writes
        (a split brain) until one record is forced again; replication then resolves the runs'
        conflicting histories (the highest version wins, nothing external is lost)."""
        current = await self.get(name)
        if not current.is_global:
            raise InvalidArgumentError(
                f"namespace {name!r} is local; it has no other cluster to fail over to"
            )
        if cluster not in current.clusters:
            raise InvalidArgumentError(
                f"cluster {cluster!r} is not among {name!r}'s clusters {current.clusters}"
            )
        info = replace(current, clusters=list(current.clusters), data=dict(current.data))
        if cluster != current.active_cluster:
            info.active_cluster = cluster
            info.failover_version = self.cluster.next_failover_version(cluster, current.failover_version)
            info.config_version = current.config_version + 1
            info.failover_history = _with_failover(current, info, False, note="forced here only")
        await self._store_update(info)
        if info.active_cluster != current.active_cluster:
            await self._activated(info)
        return info

    async def _store_update(self, info: NamespaceInfo) -> None:
        version = self._versions.get(info.id, 0)
        try:
            await self._store.update_namespace(
                NamespaceRow(info.id, info.name, _encode(info), info.is_global, version + 1),
                expected_notification_version=version,
            )
        except perr.ConditionFailedError:
            self._by_name.pop(info.name, None)
            self._by_id.pop(info.id, None)
            raise AlreadyExistsError(f"namespace {info.name!r} was changed concurrently; retry") from None
        self._remember(info, version + 1)

    async def _changed(self, info: NamespaceInfo) -> None:
        if info.is_global and self.on_change is not None:
            await self.on_change(replace(info))

    # -- changes made elsewhere ------------------------------------------------------------------

    async def apply_replicated(self, info: NamespaceInfo) -> bool:
        """Applies a global namespace's change made in another cluster; False when it is not newer
        than what this cluster has (a duplicate or a late delivery). Idempotent."""
        if not info.is_global:
            raise ReplicatedNamespaceError(f"namespace {info.name!r}: only global namespaces replicate")
        # Kept even when it does not list this cluster: every cluster reads every topic, and the
        # record is how it tells a namespace that is not replicated here (its batches are
        # skipped) from one whose registration has not arrived yet (they wait).
        try:
            current: NamespaceInfo | None = await self.get_by_id(info.id)
        except NamespaceNotFoundError:
            current = None
        if current is None:
            try:
                await self._store.create_namespace(
                    NamespaceRow(info.id, info.name, _encode(info), is_global=True)
                )
            except perr.AlreadyExistsError:
                raise ReplicatedNamespaceError(
                    f"namespace {info.name!r} (id {info.id}) exists in cluster {self._cluster!r} "
                    "with another id; it cannot take the replicated one"
                ) from None
            self._remember(info, 0)
            log.info("namespace %s replicated here (active cluster %s)", info.name, info.active_cluster)
            return True
        if info.config_version <= current.config_version:
            return False
        if info.failover_version < current.failover_version:
            raise ReplicatedNamespaceError(
                f"namespace {info.name!r}: replicated change {info.config_version} moves the failover "
                f"version back from {current.failover_version} to {info.failover_version}"
            )
        await self._store_update(info)
        if info.active_cluster != current.active_cluster:
            log.info(
                "namespace %s failed over from %s to %s (version %d)",
                info.name,
                current.active_cluster,
                info.active_cluster,
                info.failover_version,
            )
            await self._activated(info)
        return True

    async def _activated(self, info: NamespaceInfo) -> None:
        if info.active_cluster == self._cluster and self.on_activated is not None:
            await self.on_activated(replace(info))

    def _remember(self, info: NamespaceInfo, version: int) -> None:
        old = self._by_id.get(info.id)
        if old is not None and old.name != info.name:
            self._by_name.pop(old.name, None)
        self._by_name[info.name] = info
        self._by_id[info.id] = info
        self._versions[info.id] = version


FAILOVER_HISTORY = 20
"""Failovers a namespace remembers."""


def _with_failover(current: NamespaceInfo, info: NamespaceInfo, graceful: bool, note: str = "") -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kind = "graceful" if graceful else "forced"
    entry = f"{when} {current.active_cluster} -> {info.active_cluster} v{info.failover_version} {kind}"
    return [*current.failover_history, entry + (f" ({note})" if note else "")][-FAILOVER_HISTORY:]


def _encode(info: NamespaceInfo) -> bytes:
    return json.dumps(asdict(info)).encode()


def _decode(row: NamespaceRow) -> NamespaceInfo:
    return NamespaceInfo(**json.loads(row.data))
