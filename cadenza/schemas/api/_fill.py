"""Reading an older version of a message without Avro's schema resolution.

A released version that differs from the current one only by fields added since (at any depth,
each with a default) is read with its own schema, as written, and then given the added fields'
defaults where they are missing: the record resolution would give, at a fraction of its cost. A
workflow task written by the version before its query gained a header decodes in about 9 µs this
way against 21 µs resolved, and every workflow task a server sends is written in the oldest
version that holds it.

``plan`` compares the two parsed schemas once, at import; a difference it cannot fill (a field
removed or retyped, a union whose changed branch cannot be told from another by the value's
shape) raises ``Unsupported``, and that version keeps being resolved by fastavro.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


class Unsupported(Exception):
    """The older schema differs by more than added fields: resolve it instead."""


@dataclass(eq=False)
class RecordFill:
    added: list[tuple[str, Any]] = field(default_factory=list)
    """Fields missing from the older record, with their defaults."""
    children: list[tuple[str, Fill]] = field(default_factory=list)
    """Fields whose values hold records that gained fields."""


@dataclass(eq=False)
class ArrayFill:
    item: Fill


@dataclass(eq=False)
class MapFill:
    value: Fill


Fill = RecordFill | ArrayFill | MapFill


def plan(old: dict[str, Any], new: dict[str, Any]) -> RecordFill | None:
    """What reading ``old`` (a fastavro-parsed record schema) as ``new`` adds; None if nothing."""
    names_old = old.get("__named_schemas", {})
    names_new = new.get("__named_schemas", {})
    fill = _diff(old, new, names_old, names_new, {})
    if fill is not None and not isinstance(fill, RecordFill):
        raise Unsupported("a message is a record")
    return fill


def apply(fill: Fill, value: Any) -> None:
    """Adds, in place, what ``fill`` says is missing from ``value``."""
    if type(fill) is RecordFill:
        if not isinstance(value, dict):
            return
        for name, default in fill.added:
            if name not in value:
                value[name] = copy.copy(default)  # a fresh {} or [] per record
        for name, child in fill.children:
            v = value.get(name)
            if v is not None:
                apply(child, v)
    elif type(fill) is ArrayFill:
        if isinstance(value, list):
            for v in value:
                apply(fill.item, v)
    elif type(fill) is MapFill and isinstance(value, dict):
        for v in value.values():
            apply(fill.value, v)


def _kind(schema: Any, names: dict[str, Any]) -> str:
    schema = names.get(schema, schema) if isinstance(schema, str) else schema
    if isinstance(schema, dict):
        return str(schema.get("type"))
    return "union" if isinstance(schema, list) else str(schema)


def _diff(
    old: Any, new: Any, names_old: dict[str, Any], names_new: dict[str, Any], memo: dict[str, Any]
) -> Fill | None:
    old = names_old.get(old, old) if isinstance(old, str) else old
    new = names_new.get(new, new) if isinstance(new, str) else new
    if isinstance(old, list) or isinstance(new, list):
        if not (isinstance(old, list) and isinstance(new, list)) or len(old) != len(new):
            raise Unsupported("a union changed its branches")
        changed = [
            (i, f)
            for i, (o, n) in enumerate(zip(old, new, strict=True))
            if (f := _diff(o, n, names_old, names_new, memo))
        ]
        if not changed:
            return None
        if len(changed) > 1:
            raise Unsupported("a union with two changed branches")
        i, fill = changed[0]
        # The value's shape must say which branch it is: one dict-shaped (record or map) branch,
        # or one array branch.
        shape = {"record": "dict", "map": "dict", "array": "list"}
        mine = shape.get(_kind(new[i], names_new))
        if sum(1 for n in new if shape.get(_kind(n, names_new)) == mine) > 1:
            raise Unsupported("a union whose changed branch has the shape of another")
        return fill
    if isinstance(old, str) or isinstance(new, str):
        if old != new:
            raise Unsupported(f"{old!r} became {new!r}")
        return None
    kind = new.get("type")
    if old.get("type") != kind:
        raise Unsupported(f"a {old.get('type')} became a {kind}")
    if kind == "record":
        if old.get("name") != new.get("name"):
            raise Unsupported(f"record {old.get('name')} became {new.get('name')}")
        key = str(new["name"])
        if key in memo:
            found: Fill | None = memo[key]
            return found  # a record met again (recursion): the same fill, even while it is built
        fill = RecordFill()
        memo[key] = fill
        old_fields = {f["name"]: f for f in old["fields"]}
        for f in new["fields"]:
            o = old_fields.pop(f["name"], None)
            if o is None:
                if "default" not in f:
                    raise Unsupported(f"{key}.{f['name']} was added without a default")
                fill.added.append((f["name"], f["default"]))
                continue
            child = _diff(o["type"], f["type"], names_old, names_new, memo)
            if child is not None:
                fill.children.append((f["name"], child))
        if old_fields:
            raise Unsupported(f"{key} lost {', '.join(old_fields)}")
        if not fill.added and not fill.children:
            memo[key] = None
            return None
        return fill
    if kind == "array":
        item = _diff(old["items"], new["items"], names_old, names_new, memo)
        return ArrayFill(item) if item is not None else None
    if kind == "map":
        value = _diff(old["values"], new["values"], names_old, names_new, memo)
        return MapFill(value) if value is not None else None
    # enum, fixed, a primitive with attributes: unchanged or not readable without resolution
    strip = ("__", "doc", "cadenza.")
    if {k: v for k, v in old.items() if not k.startswith(strip)} != {
        k: v for k, v in new.items() if not k.startswith(strip)
    }:
        raise Unsupported(f"a {kind} changed")
    return None
