"""Namespaces: registration, lookup by name or id (cached), update.

The failover version and the cluster list are part of a namespace from the start, so global
(multi-cluster) namespaces need no data-model change later.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict

from cadenza.engine.errors import AlreadyExistsError, InvalidArgumentError, NamespaceNotFoundError
from cadenza.engine.persistence import errors as perr
from cadenza.engine.persistence.protocols import NamespaceRow, NamespaceStore
from cadenza.schemas.service import NamespaceInfo

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class NamespaceRegistry:
    def __init__(self, store: NamespaceStore, *, cluster_name: str = "active") -> None:
        self._store = store
        self._cluster = cluster_name
        self._by_name: dict[str, NamespaceInfo] = {}
        self._by_id: dict[str, NamespaceInfo] = {}
        self._versions: dict[str, int] = {}

    async def register(self, info: NamespaceInfo) -> NamespaceInfo:
        if not _NAME.match(info.name):
            raise InvalidArgumentError(
                f"namespace name {info.name!r} is invalid: use 1-255 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if info.retention_days < 0:
            raise InvalidArgumentError(f"retention_days must not be negative (got {info.retention_days})")
        info.id = info.id or str(uuid.uuid4())
        info.clusters = info.clusters or [self._cluster]
        info.active_cluster = info.active_cluster or info.clusters[0]
        if info.active_cluster not in info.clusters:
            raise InvalidArgumentError(
                f"active cluster {info.active_cluster!r} is not among the clusters {info.clusters}"
            )
        try:
            await self._store.create_namespace(
                NamespaceRow(info.id, info.name, _encode(info), is_global=info.is_global)
            )
        except perr.AlreadyExistsError:
            raise AlreadyExistsError(f"namespace {info.name!r} already exists") from None
        self._remember(info, 0)
        return info

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

    async def update(self, info: NamespaceInfo) -> NamespaceInfo:
        current = await self.get(info.name)
        info.id = current.id
        version = self._versions.get(current.id, 0)
        try:
            await self._store.update_namespace(
                NamespaceRow(info.id, info.name, _encode(info), info.is_global, version + 1),
                expected_notification_version=version,
            )
        except perr.ConditionFailedError:
            self._by_name.pop(info.name, None)
            raise AlreadyExistsError(f"namespace {info.name!r} was changed concurrently; retry") from None
        self._remember(info, version + 1)
        return info

    def _remember(self, info: NamespaceInfo, version: int) -> None:
        self._by_name[info.name] = info
        self._by_id[info.id] = info
        self._versions[info.id] = version


def _encode(info: NamespaceInfo) -> bytes:
    return json.dumps(asdict(info)).encode()


def _decode(row: NamespaceRow) -> NamespaceInfo:
    return NamespaceInfo(**json.loads(row.data))
