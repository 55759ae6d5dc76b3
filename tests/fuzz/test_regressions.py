"""Every input the fuzzers found (``regressions/<target>/``) replayed on every run, without atheris:
each is now answered with its decoder's documented error. Also checks that the targets start from
valid inputs and report what they should."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.schemas import api
from tests.fuzz import seeds, targets
from tests.fuzz.targets import TARGETS

REGRESSIONS = Path(__file__).with_name("regressions")
CASES = sorted(REGRESSIONS.glob("*/*.bin"))


def test_every_regression_belongs_to_a_target() -> None:
    assert CASES, "no regression inputs found"
    assert {p.parent.name for p in CASES} <= set(TARGETS)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_found_input_is_answered_with_the_documented_error(path: Path) -> None:
    TARGETS[path.parent.name].one_input(path.read_bytes())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_seed_is_accepted_by_its_target(name: str) -> None:
    target = TARGETS[name]
    inputs = target.seeds()
    assert inputs
    for data in inputs:
        assert len(data) <= target.max_len
        target.one_input(data)


def test_api_seeds_decode_for_every_method() -> None:
    """Seeds the server would refuse would leave the fuzzer outside the handlers."""
    made = seeds.api_request_seeds()
    assert {m for m, _ in made} == set(api.METHODS)
    for method, body in made:
        api.decode(f"{method}Request", body)


def test_an_undocumented_error_escapes_the_grpc_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """The target reports what the server would answer with UNKNOWN."""

    def broken(record: dict[str, object]) -> None:
        raise ZeroDivisionError("a bug in a handler")

    monkeypatch.setattr(targets.logcontext, "bind_request", broken)
    data = targets.grpc_seeds()[0]
    with pytest.raises(ZeroDivisionError):
        targets.grpc_requests(data)


def test_the_grpc_target_reaches_the_frontend_for_a_valid_request(monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[str] = []

    class Recording(targets._StandInFrontend):
        def __getattr__(self, name: str) -> object:
            reached.append(name)
            return super().__getattr__(name)

    handlers = targets.Handlers(Recording(), targets.ClusterInfo()).table()
    monkeypatch.setattr(targets, "_HANDLERS", handlers)
    index = api.METHODS.index("SignalWorkflowExecution")
    body = next(b for m, b in seeds.api_request_seeds() if m == "SignalWorkflowExecution")
    targets.grpc_requests(bytes([index]) + body)
    assert reached == ["signal_workflow_execution"]
