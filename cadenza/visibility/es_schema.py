"""Versioned setup of the Elasticsearch visibility index: ``setup-index`` and ``update-index``.

The index template carries ``version`` (:data:`~cadenza.visibility.es_store.TEMPLATE_VERSION`), as
the anchors version their visibility template. ``setup_index`` puts the template and creates the
index when missing; ``update_index`` re-puts the template when the stored one is older and adds the
template's fields the index lacks (Elasticsearch can add fields to a live index, never change
them), or, as a dry run, only reports what it would do. The custom search attributes are not
touched: they live in the index's own mapping (``_meta.search_attributes``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from cadenza.visibility.errors import VisibilityStoreError
from cadenza.visibility.es_store import TEMPLATE_VERSION, index_template


@dataclass(frozen=True)
class IndexStatus:
    index: str
    template_version: int | None
    """The stored template's version (None: no template)."""
    index_exists: bool
    missing_fields: tuple[str, ...] = field(default_factory=tuple)
    """Fields of this build's template the index's mapping lacks."""

    @property
    def up_to_date(self) -> bool:
        return self.template_version == TEMPLATE_VERSION and self.index_exists and not self.missing_fields


async def _call(fn: Any, /, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, **kwargs)


async def index_status(client: Elasticsearch, index: str) -> IndexStatus:
    """What the cluster holds for ``index`` compared with this build's template."""
    try:
        found = await _call(client.indices.get_index_template, name=index)
        templates = found.get("index_templates", [])
        version = templates[0]["index_template"].get("version") if templates else None
    except NotFoundError:
        version = None
    exists = bool(await _call(client.indices.exists, index=index))
    missing: tuple[str, ...] = ()
    if exists:
        mapping = await _call(client.indices.get_mapping, index=index)
        have = mapping[index]["mappings"].get("properties", {})
        want = index_template(index)["template"]["mappings"]["properties"]
        missing = tuple(sorted(set(want) - set(have)))
    return IndexStatus(index, version, exists, missing)


async def setup_index(client: Elasticsearch, index: str) -> IndexStatus:
    """Puts the template and creates the index if missing; returns the state before. Running it
    again changes nothing."""
    before = await index_status(client, index)
    if before.template_version != TEMPLATE_VERSION:
        await _put_template(client, index)
    if not before.index_exists:
        try:
            await _call(client.indices.create, index=index)
        except Exception as e:  # created meanwhile by another process
            if "resource_already_exists_exception" not in str(e):
                raise VisibilityStoreError(f"Elasticsearch index {index}: {e}") from e
    return before


async def update_index(client: Elasticsearch, index: str, *, dry_run: bool = False) -> IndexStatus:
    """Brings an existing index to this build's template; returns the state before. With
    ``dry_run`` nothing changes."""
    before = await index_status(client, index)
    if not before.index_exists:
        raise VisibilityStoreError(
            f"Elasticsearch index {index} does not exist; create it with "
            f"`cadenza admin elasticsearch setup-index --index {index}`"
        )
    if before.template_version is not None and before.template_version > TEMPLATE_VERSION:
        raise VisibilityStoreError(
            f"Elasticsearch index {index}: template version {before.template_version} is newer than "
            f"this build's {TEMPLATE_VERSION}; run a newer Cadenza against it"
        )
    if dry_run:
        return before
    if before.template_version != TEMPLATE_VERSION:
        await _put_template(client, index)
    if before.missing_fields:
        want = index_template(index)["template"]["mappings"]["properties"]
        await _call(
            client.indices.put_mapping,
            index=index,
            properties={name: want[name] for name in before.missing_fields},
        )
    return before


async def _put_template(client: Elasticsearch, index: str) -> None:
    await _call(client.indices.put_index_template, name=index, **index_template(index))
