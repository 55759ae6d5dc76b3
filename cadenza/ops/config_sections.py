"""The server config's sections beside persistence and replication: ``global``, ``services``,
``publicClient``, ``tracing``, the Elasticsearch datastore; and how a validation error becomes one
line naming its key.

Every key is modelled with ``extra="forbid"``: a key the server does not act on is an error, never
silently dropped. Keys the anchors' config has and this server does not support yet are listed in
``NOT_SUPPORTED`` with the reason, so the operator reads why rather than "unknown key". The table of
every key and what it does today is ``docs/configuration.md``.
"""

from __future__ import annotations

import ipaddress
import types
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from cadenza.engine.auth.config import parse_duration
from cadenza.metrics.core import split_address
from cadenza.ops.overload_config import FrontendLimitsConfig

ROLES = ("frontend", "history", "matching", "worker")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address (e.g. 127.0.0.1 or 0.0.0.0)") from None
    return value


class Rpc(_Strict):
    grpcPort: Annotated[int, Field(ge=0, le=65535)] = 7233
    """The frontend's: the port the gRPC API serves on (0: any free port). Other roles: validated,
    not used while every role runs in the frontend's process."""
    membershipPort: Annotated[int, Field(ge=0, le=65535)] | None = None
    """Validated (range, no clash with another role's ports); not used until roles run as separate
    processes and join a membership ring."""
    bindOnLocalHost: bool | None = None
    """``true``: bind 127.0.0.1 (as the anchors); give it or ``bindOnIP``, not both."""
    bindOnIP: str | None = None

    @field_validator("bindOnIP")
    @classmethod
    def _bind_ip(cls, value: str | None) -> str | None:
        return None if value is None else _ip(value)

    @model_validator(mode="after")
    def _one_bind(self) -> Rpc:
        if self.bindOnLocalHost and self.bindOnIP is not None:
            raise ValueError("give bindOnLocalHost or bindOnIP, not both")
        return self

    def bind_ip(self) -> str:
        if self.bindOnIP is not None:
            return self.bindOnIP
        return "127.0.0.1"


class Service(_Strict):
    rpc: Rpc = Rpc()
    metrics: dict[str, Any] | None = None
    """Validated and combined with the other roles' by ``cadenza.metrics.config``."""
    limits: FrontendLimitsConfig | None = None
    """The frontend's overload limits (``cadenza.ops.overload_config``); an error on another role."""


class Services(_Strict):
    frontend: Service | None = None
    history: Service | None = None
    matching: Service | None = None
    worker: Service | None = None

    def roles(self) -> Iterator[tuple[str, Service]]:
        for role in ROLES:
            service = getattr(self, role)
            if service is not None:
                yield role, service

    def problems(self) -> list[str]:
        """Two roles (or a role's gRPC and membership ports) on one port of one address would not
        start once roles run as processes; reported now so a config written today keeps working."""
        seen: dict[tuple[str, int], str] = {}
        out = []
        for role, service in self.roles():
            if role != "frontend" and service.limits is not None:
                out.append(f"services.{role}.limits: overload limits apply to the frontend only")
            rpc = service.rpc
            for key, port in (("grpcPort", rpc.grpcPort), ("membershipPort", rpc.membershipPort)):
                if not port:
                    continue
                where = f"services.{role}.rpc.{key}"
                other = seen.get((rpc.bind_ip(), port))
                if other is not None:
                    out.append(f"{where}: port {port} is also {other} on {rpc.bind_ip()}")
                else:
                    seen[(rpc.bind_ip(), port)] = where
        return out


class Membership(_Strict):
    """``global.membership``: how the server joins the cluster's membership in the store
    (``cadenza.engine.membership``)."""

    maxJoinDuration: str | float = "30s"
    """How long start-up may try to write this process's membership rows (the store may be
    starting too); then the start fails naming this key."""
    broadcastAddress: str | None = None
    """The IP other processes reach this one at (default: the bind address)."""

    @field_validator("maxJoinDuration")
    @classmethod
    def _duration(cls, value: str | float) -> str | float:
        parse_duration(value)
        return value

    @field_validator("broadcastAddress")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _ip(value)


MAX_DRAIN_TIMEOUT_S = 3600.0
"""The longest graceful stop a config may ask for: a stop that waits longer is no longer graceful
for whatever restarts the process (a deployment, an orchestrator's own kill timeout)."""


def drain_timeout_s(value: str | float) -> float:
    """Seconds from a ``drainTimeout`` such as ``10s`` or ``500ms``; raises ValueError naming the
    value and the limit."""
    seconds = parse_duration(value)
    if seconds > MAX_DRAIN_TIMEOUT_S:
        raise ValueError(f"{value!r} is longer than the limit of {MAX_DRAIN_TIMEOUT_S:g} s")
    return seconds


class Shutdown(_Strict):
    """``global.shutdown``: the graceful stop that SIGTERM and SIGINT start."""

    drainTimeout: str | float = "10s"
    """How long the calls in flight get to finish (then they are cancelled); the engine's own
    stop comes after, within what is left of it."""

    @field_validator("drainTimeout")
    @classmethod
    def _duration(cls, value: str | float) -> str | float:
        drain_timeout_s(value)
        return value


class GlobalConfig(_Strict):
    membership: Membership | None = None
    shutdown: Shutdown | None = None
    metrics: dict[str, Any] | None = None
    """Validated by ``cadenza.metrics.config`` (with the per-role blocks)."""
    authorization: dict[str, Any] | None = None
    """Validated by ``cadenza.engine.auth.config``."""


class PublicClient(_Strict):
    hostPort: str
    """``host:port`` of the frontend as other processes reach it."""

    @field_validator("hostPort")
    @classmethod
    def _host_port(cls, value: str) -> str:
        port = split_address(value)[1]
        if not value.rpartition(":")[0] or port == 0:
            raise ValueError(f"expected host:port with a port above 0, got {value!r}")
        return value


class OtlpConfig(_Strict):
    endpoint: str
    serviceName: str = "cadenza-server"

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected an http(s)://host:port URL, got {value!r}")
        return value


class TracingConfig(_Strict):
    otlp: OtlpConfig
    samplingRatio: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


class ElasticsearchUrl(_Strict):
    scheme: Literal["http", "https"] = "http"
    host: str
    """``host:port``."""

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        split_address(value)
        return value


class ElasticsearchIndices(_Strict):
    visibility: str = "cadenza_visibility_v1"

    @field_validator("visibility")
    @classmethod
    def _index_name(cls, value: str) -> str:
        # Elasticsearch's own rule; checked here so the server does not fail at its first write.
        if (
            not value
            or value != value.lower()
            or any(c in value for c in ' "*\\<|,>/?#:')
            or value[0] in "-_+"
        ):
            raise ValueError(f'{value!r} is not a valid index name (lowercase, no spaces or \\/*?"<>|,#:)')
        return value


class ElasticsearchStore(_Strict):
    version: Literal["v7", "v8"] | None = None
    """The anchors name the server's major version; the client speaks to both."""
    url: Annotated[
        Annotated[str, Tag("text")] | Annotated[ElasticsearchUrl, Tag("parts")],
        Discriminator(lambda v: "parts" if isinstance(v, Mapping | BaseModel) else "text"),
    ]
    """``http://host:port``, or the anchors' ``{scheme, host}``."""
    username: str | None = None
    password: str | None = None
    indices: ElasticsearchIndices = ElasticsearchIndices()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | ElasticsearchUrl) -> str | ElasticsearchUrl:
        if isinstance(value, str):
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"expected http(s)://host:port, got {value!r}")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> ElasticsearchStore:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self

    def url_text(self) -> str:
        if isinstance(self.url, str):
            return self.url
        return f"{self.url.scheme}://{self.url.host}"


NOT_SUPPORTED: Mapping[str, str] = {
    "log": "not supported in the config file; use `cadenza server start --log-level/--log-format`",
    "global.pprof": "not supported (a Go profiler endpoint); profile the Python process with py-spy",
    "global.tls": "not supported in the config file yet; `cadenza server start-dev --tls-*` serves TLS",
    "persistence.datastores.*.sql": "SQL datastores (MySQL, PostgreSQL) are not supported; "
    "use sqlite or cassandra",
    "persistence.datastores.*.cassandra.tls": "Cassandra TLS is not supported yet",
    "persistence.datastores.*.cassandra.datacenter": "not supported yet: requests go to the local "
    "data centre the driver discovers; give `--datacenter` to `cadenza admin cassandra setup-schema` "
    "for the keyspace's replication",
}
"""Keys of the anchors' config this server refuses, with why (``*`` matches any one key)."""


def not_supported(doc: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The problems of ``NOT_SUPPORTED`` keys present in ``doc``, and ``doc`` without them (so they
    are not reported a second time as unknown keys)."""
    problems: list[str] = []

    def strip(node: Any, path: list[str], prefix: str) -> Any:
        if not isinstance(node, Mapping):
            return node
        out = {}
        for key, value in node.items():
            here = f"{prefix}.{key}" if prefix else str(key)
            pattern = [*path, str(key)]
            reason = _reason(pattern)
            if reason is not None:
                problems.append(f"{here}: {reason}")
                continue
            if not _may_nest(pattern):
                out[key] = value
                continue
            kept = strip(value, pattern, here)
            # A section left empty by a refused key (a datastore with only ``sql``) is dropped with
            # it rather than reported again as empty.
            if not (isinstance(value, Mapping) and value and isinstance(kept, Mapping) and not kept):
                out[key] = kept
        return out

    return problems, strip(doc, [], "")


def _matches(pattern: str, path: list[str]) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p in ("*", k) for p, k in zip(parts, path, strict=True))


def _reason(path: list[str]) -> str | None:
    return next((r for p, r in NOT_SUPPORTED.items() if _matches(p, path)), None)


def _may_nest(path: list[str]) -> bool:
    return any(
        len(p.split(".")) > len(path) and _matches(".".join(p.split(".")[: len(path)]), path)
        for p in NOT_SUPPORTED
    )


# -- one line per error -----------------------------------------------------------------------------


def _unwrap(t: Any) -> Any:
    """The model or dict type inside ``Optional``/``Annotated``/a union, else ``t``."""
    while True:
        origin = get_origin(t)
        if origin is Annotated:
            t = get_args(t)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(t) if a is not type(None)]
            picks = [a for a in args if _is_model(_unwrap(a)) or get_origin(_unwrap(a)) is dict]
            t = picks[0] if picks else args[0]
        else:
            return t


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _keys_of(model: type[BaseModel]) -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        choice = info.validation_alias
        if isinstance(choice, AliasChoices):
            out += [str(c) for c in choice.choices]
        else:
            out.append(info.alias or name)
    return out


def known_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the model at ``loc`` (a path of the document) accepts, or None when unknown."""
    t: Any = root
    for part in loc:
        t = _unwrap(t)
        if _is_model(t):
            field = next(
                (f for n, f in t.model_fields.items() if part in (n, f.alias) or _alias_hit(f, part)), None
            )
            if field is None:
                return None
            t = field.annotation
        elif get_origin(t) is dict:
            t = get_args(t)[1]
        else:
            return None
    t = _unwrap(t)
    return _keys_of(t) if _is_model(t) else None


def _alias_hit(field: Any, part: Any) -> bool:
    choice = field.validation_alias
    return isinstance(choice, AliasChoices) and part in choice.choices


def error_lines(root: type[BaseModel], doc: Any, errors: list[Any]) -> list[str]:
    """``<key>: <what is wrong>`` for each pydantic error, the key spelled as in the document.

    Pydantic names union members in its locations (``hosts.str``, ``hosts.list[str]``); a location
    is cut where it leaves the document, and the errors of one key are joined into one line."""
    by_key: dict[str, list[str]] = {}
    located = [(err, _doc_path(doc, tuple(err["loc"]), err["type"])) for err in errors]
    # A misspelt key is both unknown and, if required, missing: the unknown key says it all.
    misspelt = {loc[:-1] for err, loc in located if err["type"] == "extra_forbidden"}
    for err, loc in located:
        if err["type"] == "missing" and loc[:-1] in misspelt:
            continue
        where = ".".join(str(p) for p in loc) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            keys = known_keys(root, loc[:-1])
            msg = "unknown key" + (f"; expected one of: {', '.join(keys)}" if keys else "")
        elif err["type"] == "missing":
            msg = "required"
        elif not isinstance(err.get("input"), dict | list) and err["type"] not in ("value_error",):
            msg = f"{msg} (got {err.get('input')!r})"
        if msg not in by_key.setdefault(where, []):
            by_key[where].append(msg)
    return [f"{where}: {'; or '.join(msgs)}" for where, msgs in by_key.items()]


def _doc_path(doc: Any, loc: tuple[Any, ...], kind: str) -> tuple[Any, ...]:
    """``loc`` without the parts pydantic adds that are not keys of the document (union members
    and tags); a missing key, which is not in the document either, is kept when it comes last."""
    node, out = doc, []
    for i, part in enumerate(loc):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
            out.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out.append(part)
        elif kind == "missing" and i == len(loc) - 1:
            out.append(part)
    return tuple(out)
