"""Dynamic config: settings an operator changes without restarting the server.

A YAML file, re-read when it changes (checked every ``pollInterval``), shaped as the anchors'
``dynamicconfig/development.yaml``: each key holds a list of values, each with optional
constraints; the first entry whose constraints all match the request wins, an entry without
constraints matches everything::

    system.enableNamespaceNotActiveAutoForwarding:
      - value: false
        constraints: {namespace: payments}
      - value: true
    frontend.namespaceRPS:
      - value: 200
        constraints: {namespace: video}

Keys this server knows are in ``KEYS`` with their type; a malformed file, an unknown key or a
value of the wrong type keeps the last good values and logs one clear error naming the file and
the key, until the file changes again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

log = logging.getLogger("cadenza.dynamicconfig")

KEYS: dict[str, type] = {
    # A standby cluster forwards the selected APIs of a global namespace to its active cluster.
    "system.enableNamespaceNotActiveAutoForwarding": bool,
    # Overload limits (cadenza.engine.ratelimit; their static values: services.frontend.limits).
    # Start, signal, cancel, terminate, reset and update requests a namespace may make per second
    # on this frontend (0: unlimited); above it the frontend answers RESOURCE_EXHAUSTED with a hint.
    "frontend.namespaceRPS": int,
    # The same requests of all namespaces together per second on this frontend (no constraints).
    "frontend.rps": int,
    # Open task long polls of a namespace on this frontend, and of one client identity within it.
    "frontend.namespaceCount": int,
    "frontend.namespaceCountPerIdentity": int,
    # How often (at first) a cluster re-drives its replication DLQ while it is not empty.
    "history.replicationDLQRetryIntervalSeconds": float,
}
CONSTRAINTS = ("namespace", "clusterName", "taskQueueName")


class DynamicConfigError(ValueError):
    """The file cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Any
    constraints: Mapping[str, str]

    def matches(self, given: Mapping[str, str]) -> bool:
        return all(given.get(k) == v for k, v in self.constraints.items())


class DynamicConfig:
    def __init__(self, path: str | Path | None = None, *, poll_interval_s: float = 10.0) -> None:
        self.path = Path(path) if path is not None else None
        self.poll_interval_s = poll_interval_s
        self._values: dict[str, list[_Entry]] = {}
        self._stamp: tuple[int, int] | None = None
        self._last_error = ""
        self._task: asyncio.Task[None] | None = None
        if self.path is not None:
            self.reload()

    def get(self, key: str, default: Any, **constraints: str) -> Any:
        """The value of ``key`` for a request with ``constraints`` (e.g. ``namespace="video"``)."""
        for entry in self._values.get(key, ()):
            if entry.matches(constraints):
                return entry.value
        return default

    def reload(self) -> bool:
        """Reads the file if it changed; True if new values are in force. A bad file keeps the
        last good values and logs its error once."""
        assert self.path is not None
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError as e:
            return self._failed(f"{self.path}: cannot read dynamic config: {e.strerror or e}")
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            values = parse(self.path.read_text(), str(self.path))
        except (OSError, DynamicConfigError) as e:
            return self._failed(str(e))
        except UnicodeDecodeError as e:
            return self._failed(f"{self.path}: not UTF-8 text: {e}")
        self._values = values
        self._last_error = ""
        log.info("dynamic config %s loaded (%d keys)", self.path, len(values))
        return True

    def _failed(self, error: str) -> bool:
        if error != self._last_error:
            log.error("%s; keeping the last good values", error)
            self._last_error = error
        return False

    def start(self) -> None:
        if self.path is not None and self._task is None:
            self._task = asyncio.create_task(self._poll(), name="cadenza-dynamic-config")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            self.reload()


def parse(text: str, source: str = "dynamic config") -> dict[str, list[_Entry]]:
    """Every problem of the file at once, each naming its key."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise DynamicConfigError(f"{source}: not valid YAML: {e}") from None
    except RecursionError:
        raise DynamicConfigError(f"{source}: not valid YAML: collections nested too deeply") from None
    except ValueError as e:  # PyYAML lets int()'s refusal of a number of over 4300 digits through
        raise DynamicConfigError(f"{source}: not valid YAML: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise DynamicConfigError(f"{source}: expected a mapping of keys at the top level")
    problems: list[str] = []
    out: dict[str, list[_Entry]] = {}
    for key, entries in doc.items():
        kind = KEYS.get(str(key))
        if kind is None:
            problems.append(f"{key}: unknown key (known: {', '.join(sorted(KEYS))})")
            continue
        if not isinstance(entries, list):
            problems.append(f"{key}: expected a list of {{value, constraints}} entries")
            continue
        parsed: list[_Entry] = []
        for n, entry in enumerate(entries):
            where = f"{key}[{n}]"
            if not isinstance(entry, dict) or "value" not in entry:
                problems.append(f"{where}: expected {{value: ..., constraints: {{...}}}}")
                continue
            value = entry["value"]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                if abs(value) > sys.float_info.max:
                    problems.append(f"{where}.value: out of range of a float")
                    continue
                value = float(value)
            if kind is float and isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{where}.value: expected a finite number, got {value!r}")
                continue
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                problems.append(f"{where}.value: expected {kind.__name__}, got {value!r}")
                continue
            constraints = entry.get("constraints") or {}
            if not isinstance(constraints, dict):
                problems.append(f"{where}.constraints: expected a mapping, got {constraints!r}")
                continue
            unknown = [c for c in constraints if c not in CONSTRAINTS]
            if unknown:
                problems.append(
                    f"{where}.constraints: unknown constraint(s) {unknown} (known: {', '.join(CONSTRAINTS)})"
                )
                continue
            parsed.append(_Entry(value, {str(k): str(v) for k, v in constraints.items()}))
        out[str(key)] = parsed
    if problems:
        raise DynamicConfigError(f"{source}: " + "; ".join(problems))
    return out
