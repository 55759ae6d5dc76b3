"""What the workflow decorators record, and the validation they run.

Method decorators only mark functions; ``@workflow.defn`` reads the marks of the whole class,
collects every problem and raises once, so a user fixes a class in one go.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "QueryDefinition",
    "SignalDefinition",
    "UpdateDefinition",
    "WorkflowDefinition",
    "mark_query",
    "mark_run",
    "mark_signal",
    "mark_update",
]

_DEFN_ATTR = "__cadenza_workflow_definition"
_RUN_MARK = "__cadenza_workflow_run"
_SIGNAL_MARK = "__cadenza_workflow_signal"
_QUERY_MARK = "__cadenza_workflow_query"
_UPDATE_MARK = "__cadenza_workflow_update"
_VALIDATOR_MARK = "__cadenza_workflow_update_validator"
_INIT_MARK = "__cadenza_workflow_init"
DYNAMIC = ""
"""The name a dynamic signal or query handler is registered under (no real name is empty)."""
DYNAMIC_WORKFLOW = "__cadenza_dynamic_workflow"
"""The name a dynamic workflow is registered under in a worker (it runs every unregistered type)."""


def _hints(fn: Callable[..., Any]) -> tuple[list[Any], Any]:
    """Positional parameter hints (``self`` excluded, ``Any`` where missing) and the return hint."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        # Unresolvable forward references: values are then decoded without shaping.
        hints = {}
    params: list[Any] = []
    for index, param in enumerate(inspect.signature(fn).parameters.values()):
        if index == 0 and param.name == "self":
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.KEYWORD_ONLY):
            continue
        params.append(hints.get(param.name, Any))
    return params, hints.get("return")


def _has_keyword_only(fn: Callable[..., Any]) -> bool:
    return any(
        p.kind == p.KEYWORD_ONLY and p.default is p.empty for p in inspect.signature(fn).parameters.values()
    )


@dataclass(frozen=True)
class SignalDefinition:
    """A signal handler of a workflow class (or one set at run time)."""

    name: str
    """Signal name clients send."""
    fn: Callable[..., Any]
    """The handler; a method (called with the workflow object) or a plain callable."""
    is_async: bool
    """True for ``async def`` handlers (run as tasks)."""
    param_types: Sequence[Any]
    """Hints used to decode the signal's arguments."""
    is_method: bool = True
    """True when ``fn`` needs the workflow object as first argument."""

    @staticmethod
    def from_fn(fn: Callable[..., Any]) -> SignalDefinition:
        """The definition of a ``@workflow.signal`` method (``ValueError`` if not one)."""
        name = getattr(fn, _SIGNAL_MARK, None)
        if name is None:
            raise ValueError(f"{getattr(fn, '__qualname__', fn)!r} is not decorated with @workflow.signal")
        params, _ = _hints(fn)
        return SignalDefinition(
            name=name, fn=fn, is_async=inspect.iscoroutinefunction(fn), param_types=params
        )


@dataclass(frozen=True)
class QueryDefinition:
    """A query handler of a workflow class (or one set at run time)."""

    name: str
    """Query name clients send."""
    fn: Callable[..., Any]
    """The handler; must not be async (a query answers from current state, without waiting)."""
    param_types: Sequence[Any]
    """Hints used to decode the query's arguments."""
    return_type: Any
    """Return hint, for clients decoding the answer."""
    is_method: bool = True
    """True when ``fn`` needs the workflow object as first argument."""

    @staticmethod
    def from_fn(fn: Callable[..., Any]) -> QueryDefinition:
        """The definition of a ``@workflow.query`` method (``ValueError`` if not one)."""
        name = getattr(fn, _QUERY_MARK, None)
        if name is None:
            raise ValueError(f"{getattr(fn, '__qualname__', fn)!r} is not decorated with @workflow.query")
        params, ret = _hints(fn)
        return QueryDefinition(name=name, fn=fn, param_types=params, return_type=ret)


@dataclass(frozen=True)
class UpdateDefinition:
    """An update handler of a workflow class (or one set at run time)."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    param_types: Sequence[Any]
    return_type: Any
    validator: Callable[..., Any] | None = None
    """Runs before the handler with the same arguments; raising rejects the update."""
    is_method: bool = True

    @staticmethod
    def from_fn(fn: Callable[..., Any]) -> UpdateDefinition:
        """The definition of a ``@workflow.update`` method (``ValueError`` if not one)."""
        name = getattr(fn, _UPDATE_MARK, None)
        if name is None:
            raise ValueError(f"{getattr(fn, '__qualname__', fn)!r} is not decorated with @workflow.update")
        params, ret = _hints(fn)
        return UpdateDefinition(
            name=name,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            param_types=params,
            return_type=ret,
            validator=getattr(fn, _VALIDATOR_MARK, None),
        )


@dataclass(frozen=True)
class WorkflowDefinition:
    """Everything the runtime needs to know about a ``@workflow.defn`` class."""

    name: str
    """Workflow type name."""
    cls: type
    """The workflow class; instantiated with no arguments per run."""
    run_fn: Callable[..., Any]
    """The ``@workflow.run`` method (unbound)."""
    run_param_types: Sequence[Any]
    """Hints used to decode the run's input."""
    run_return_type: Any
    """Return hint of the run method."""
    signals: Mapping[str, SignalDefinition]
    """Signal handlers by signal name."""
    queries: Mapping[str, QueryDefinition]
    """Query handlers by query name."""
    updates: Mapping[str, UpdateDefinition] = field(default_factory=dict)
    """Update handlers by update name."""
    failure_exception_types: Sequence[type[BaseException]] = ()
    """Exceptions that, escaping the workflow code, fail the run instead of the workflow task."""
    init_takes_args: bool = False
    """``__init__`` is marked ``@workflow.init``: it receives the run's arguments."""
    dynamic: bool = False
    """``@workflow.defn(dynamic=True)``: runs workflow types no other definition has; its run method
    takes one argument, the run's arguments as a sequence of ``RawValue``."""

    @staticmethod
    def from_class(cls: type) -> WorkflowDefinition:
        """The definition attached by ``@workflow.defn`` (``ValueError`` if ``cls`` is not decorated)."""
        defn = cls.__dict__.get(_DEFN_ATTR) if isinstance(cls, type) else None
        if not isinstance(defn, WorkflowDefinition):
            raise ValueError(
                f"Class {getattr(cls, '__qualname__', cls)!r} is not decorated with @workflow.defn"
            )
        return defn

    @staticmethod
    def from_run_fn(fn: Callable[..., Any]) -> WorkflowDefinition:
        """The definition whose run method is ``fn`` (what ``client.start_workflow(Cls.run, ...)`` passes)."""
        defn = getattr(fn, _DEFN_ATTR, None)
        if not isinstance(defn, WorkflowDefinition):
            raise ValueError(
                f"{getattr(fn, '__qualname__', fn)!r} is not the @workflow.run method "
                "of a @workflow.defn class"
            )
        return defn

    @staticmethod
    def _build(cls: type, name: str | None) -> WorkflowDefinition:
        problems: list[str] = []
        members: dict[str, Any] = {}
        # Walk the MRO base-first so a subclass's override replaces the inherited method.
        for base in reversed(cls.__mro__):
            members.update(vars(base))
        run_fns: list[tuple[str, Callable[..., Any]]] = []
        signals: dict[str, SignalDefinition] = {}
        queries: dict[str, QueryDefinition] = {}
        updates: dict[str, UpdateDefinition] = {}
        for attr, member in members.items():
            if not callable(member):
                continue
            is_run = getattr(member, _RUN_MARK, False)
            signal_name = getattr(member, _SIGNAL_MARK, None)
            query_name = getattr(member, _QUERY_MARK, None)
            update_name = getattr(member, _UPDATE_MARK, None)
            kinds = (bool(is_run), signal_name is not None, query_name is not None, update_name is not None)
            if sum(kinds) > 1:
                problems.append(
                    f"method {attr} has more than one of "
                    "@workflow.run/@workflow.signal/@workflow.query/@workflow.update"
                )
                continue
            if update_name is not None:
                if update_name in updates:
                    problems.append(
                        f"update name {update_name!r} is used by both "
                        f"{updates[update_name].fn.__name__} and {attr}"
                    )
                    continue
                if _has_keyword_only(member):
                    problems.append(f"@workflow.update method {attr} has keyword-only parameters")
                updates[update_name] = UpdateDefinition.from_fn(member)
                continue
            if is_run:
                run_fns.append((attr, member))
            elif signal_name is not None:
                if signal_name in signals:
                    problems.append(
                        f"signal name {signal_name!r} is used by both "
                        f"{signals[signal_name].fn.__name__} and {attr}"
                    )
                    continue
                if _has_keyword_only(member):
                    problems.append(f"@workflow.signal method {attr} has keyword-only parameters")
                signals[signal_name] = SignalDefinition.from_fn(member)
            elif query_name is not None:
                if query_name in queries:
                    problems.append(
                        f"query name {query_name!r} is used by both "
                        f"{queries[query_name].fn.__name__} and {attr}"
                    )
                    continue
                queries[query_name] = QueryDefinition.from_fn(member)
        run_fn: Callable[..., Any] | None = None
        if not run_fns:
            problems.append("no method is decorated with @workflow.run")
        elif len(run_fns) > 1:
            problems.append("more than one @workflow.run method: " + ", ".join(a for a, _ in run_fns))
        else:
            attr, run_fn = run_fns[0]
            if not inspect.iscoroutinefunction(run_fn):
                problems.append(f"@workflow.run method {attr} must be async def")
            if _has_keyword_only(run_fn):
                problems.append(
                    f"@workflow.run method {attr} has keyword-only parameters (arguments are positional)"
                )
        try:
            constructor = inspect.signature(cls)
        except (TypeError, ValueError):
            constructor = None
        init_takes_args = bool(getattr(getattr(cls, "__init__", None), _INIT_MARK, False))
        if constructor is not None and not init_takes_args:
            required = [
                p.name
                for p in constructor.parameters.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            if required:
                problems.append(f"__init__ must take no arguments, but requires {', '.join(required)}")
        if problems:
            count = f"{len(problems)} reason" + ("s" if len(problems) > 1 else "")
            raise ValueError(f"Invalid workflow class {cls.__qualname__} for {count}: " + "; ".join(problems))
        assert run_fn is not None
        params, ret = _hints(run_fn)
        return WorkflowDefinition(
            init_takes_args=init_takes_args,
            name=name or cls.__name__,
            cls=cls,
            run_fn=run_fn,
            run_param_types=params,
            run_return_type=ret,
            signals=signals,
            queries=queries,
            updates=updates,
        )

    def _apply(self) -> None:
        setattr(self.cls, _DEFN_ATTR, self)
        # Lets clients start a workflow from its run method alone.
        setattr(self.run_fn, _DEFN_ATTR, self)


def build_workflow_definition(
    cls: type,
    name: str | None,
    failure_exception_types: Sequence[type[BaseException]] = (),
    *,
    dynamic: bool = False,
) -> WorkflowDefinition:
    """Validate ``cls`` and attach its definition (what ``@workflow.defn`` does)."""
    if not isinstance(cls, type):
        raise TypeError(f"@workflow.defn applies to classes, got {cls!r}")
    for t in failure_exception_types:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"failure_exception_types must hold exception classes, got {t!r}")
    if dynamic and name:
        raise ValueError("a dynamic workflow has no name: it runs every type no other workflow has")
    defn = WorkflowDefinition._build(cls, DYNAMIC_WORKFLOW if dynamic else name)
    if failure_exception_types or dynamic:
        defn = dataclasses.replace(
            defn, failure_exception_types=tuple(failure_exception_types), dynamic=dynamic
        )
    defn._apply()
    return defn


def _require_function(fn: Any, decorator: str) -> None:
    if not callable(fn) or not hasattr(fn, "__name__"):
        raise TypeError(f"{decorator} applies to methods, got {fn!r}")


def mark_run(fn: Any) -> None:
    """Mark ``fn`` as the run method."""
    _require_function(fn, "@workflow.run")
    setattr(fn, _RUN_MARK, True)


def mark_signal(fn: Any, name: str | None, dynamic: bool = False) -> None:
    """Mark ``fn`` as the handler of signal ``name`` (default: the method name); ``dynamic``: of
    every signal without a handler of its own (it takes the name and a sequence of ``RawValue``)."""
    _require_function(fn, "@workflow.signal")
    if dynamic and name:
        raise ValueError("a dynamic signal handler has no name")
    setattr(fn, _SIGNAL_MARK, DYNAMIC if dynamic else name or fn.__name__)


def mark_update(fn: Any, name: str | None) -> None:
    """Mark ``fn`` as the handler of update ``name`` (default: the method name), and give it the
    ``validator`` decorator temporalio's code uses (``@my_update.validator``)."""
    _require_function(fn, "@workflow.update")
    setattr(fn, _UPDATE_MARK, name or fn.__name__)

    def validator(vfn: Any) -> Any:
        _require_function(vfn, "@<update>.validator")
        if inspect.iscoroutinefunction(vfn):
            raise TypeError(f"update validator {vfn.__name__} must not be async (validators cannot wait)")
        setattr(fn, _VALIDATOR_MARK, vfn)
        return vfn

    fn.validator = validator


def mark_init(fn: Any) -> None:
    """Mark ``__init__`` as taking the run's arguments (temporalio's ``@workflow.init``)."""
    _require_function(fn, "@workflow.init")
    if fn.__name__ != "__init__":
        raise ValueError("@workflow.init applies to __init__ only")
    setattr(fn, _INIT_MARK, True)


def mark_query(fn: Any, name: str | None, dynamic: bool = False) -> None:
    """Mark ``fn`` as the handler of query ``name`` (default: the method name); ``dynamic``: of every
    query without a handler of its own (it takes the name and a sequence of ``RawValue``)."""
    _require_function(fn, "@workflow.query")
    if dynamic and name:
        raise ValueError("a dynamic query handler has no name")
    setattr(fn, _QUERY_MARK, DYNAMIC if dynamic else name or fn.__name__)
