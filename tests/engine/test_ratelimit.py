"""The frontend's overload limits on a fake clock: request buckets per namespace and per host,
the retry hint, composite admissions, long-poll slots, and where each limit's value comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.engine.errors import ResourceExhaustedError
from cadenza.engine.ratelimit import (
    HOST_RPS,
    IDENTITY_POLLS,
    NAMESPACE_POLLS,
    NAMESPACE_RPS,
    POLL_SLOT_RETRY_MS,
    FrontendLimits,
    LongPollLimiter,
    RequestRateLimiter,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def limiter(
    clock: FakeClock, table: dict[str, int], per_namespace: dict[str, int] | None = None
) -> RequestRateLimiter:
    def limit_for(key: str, namespace: str) -> int:
        if key == NAMESPACE_RPS and per_namespace and namespace in per_namespace:
            return per_namespace[namespace]
        return table.get(key, 0)

    return RequestRateLimiter(limit_for, now=clock)


def admitted(rl: RequestRateLimiter, namespace: str, n: int) -> int:
    ok = 0
    for _ in range(n):
        try:
            rl.admit(namespace)
        except ResourceExhaustedError:
            continue
        ok += 1
    return ok


def test_a_namespace_gets_a_burst_of_its_rate_then_its_rate_per_second() -> None:
    clock = FakeClock()
    rl = limiter(clock, {NAMESPACE_RPS: 4})
    assert admitted(rl, "video", 10) == 4
    clock.t += 0.5
    assert admitted(rl, "video", 10) == 2
    clock.t += 10.0  # a long pause refills only one second's worth
    assert admitted(rl, "video", 10) == 4


def test_a_refusal_names_the_namespace_and_limit_and_says_when_a_token_returns() -> None:
    clock = FakeClock()
    rl = limiter(clock, {NAMESPACE_RPS: 4})
    assert admitted(rl, "video", 4) == 4
    clock.t += 0.1  # 0.4 of a token back: 0.6 missing at 4/s is 150 ms
    with pytest.raises(ResourceExhaustedError) as e:
        rl.admit("video")
    err = e.value
    assert err.code == "RESOURCE_EXHAUSTED"
    assert err.details == {
        "namespace": "video",
        "limit_name": NAMESPACE_RPS,
        "limit": 4,
        "retry_after_ms": 150,
    }
    assert "namespace 'video' is over its rate of 4 requests/s" in err.message
    assert "frontend.namespaceRPS" in err.message and "retry in 150 ms" in err.message
    clock.t += 0.15  # exactly the hint later, the token is there
    rl.admit("video")


def test_namespaces_have_their_own_buckets() -> None:
    clock = FakeClock()
    rl = limiter(clock, {}, per_namespace={"flooded": 2, "calm": 2})
    assert admitted(rl, "flooded", 100) == 2
    assert admitted(rl, "calm", 2) == 2


def test_the_host_limit_covers_all_namespaces_and_a_refusal_takes_no_token() -> None:
    clock = FakeClock()
    rl = limiter(clock, {HOST_RPS: 5}, per_namespace={"a": 3, "b": 3})
    assert admitted(rl, "a", 3) == 3
    assert admitted(rl, "a", 50) == 0  # refused by its own bucket: the host's tokens are untouched
    assert admitted(rl, "b", 3) == 2  # the host has 2 left
    with pytest.raises(ResourceExhaustedError) as e:
        rl.admit("b")
    assert e.value.details["limit_name"] == HOST_RPS and e.value.details["limit"] == 5
    assert "this frontend is over its rate of 5 requests/s" in e.value.message
    assert "namespace 'b'" in e.value.message
    assert e.value.details["retry_after_ms"] == 200


def test_a_limit_changed_while_running_applies_at_once() -> None:
    clock = FakeClock()
    table = {NAMESPACE_RPS: 10}
    rl = limiter(clock, table)
    assert admitted(rl, "video", 3) == 3
    table[NAMESPACE_RPS] = 2  # the bucket holds at most the new burst
    assert admitted(rl, "video", 10) == 2
    table[NAMESPACE_RPS] = 0  # off
    assert admitted(rl, "video", 100) == 100


def test_a_composite_call_is_admitted_once_for_all_its_parts() -> None:
    clock = FakeClock()
    rl = limiter(clock, {NAMESPACE_RPS: 3})
    with rl.admitted("video", cost=2):
        rl.admit("video")  # a part of the admitted call: paid for already
        rl.admit("video")
    assert admitted(rl, "video", 5) == 1
    with pytest.raises(ResourceExhaustedError), rl.admitted("video", cost=2):
        raise AssertionError("not admitted: the body must not run")
    clock.t += 1.0
    with rl.admitted("video", cost=2):
        pass
    assert admitted(rl, "video", 5) == 1


def test_many_namespaces_do_not_grow_the_table_without_bound() -> None:
    clock = FakeClock()
    rl = limiter(clock, {NAMESPACE_RPS: 1})
    for i in range(5000):
        rl.admit(f"ns-{i}")
        clock.t += 0.01
    assert len(rl._namespaces) <= 1024 + 1


def test_poll_slots_per_namespace_and_per_identity() -> None:
    table = {NAMESPACE_POLLS: 3, IDENTITY_POLLS: 2}
    polls = LongPollLimiter(lambda key, ns: table.get(key, 0))
    with polls.slot("video", "w1"), polls.slot("video", "w1"):
        with pytest.raises(ResourceExhaustedError) as e:
            with polls.slot("video", "w1"):
                pass
        assert e.value.details == {
            "namespace": "video",
            "limit_name": IDENTITY_POLLS,
            "limit": 2,
            "retry_after_ms": POLL_SLOT_RETRY_MS,
        }
        assert "client 'w1' already holds 2 open polls of namespace 'video'" in e.value.message
        with polls.slot("video", "w2"):
            with pytest.raises(ResourceExhaustedError) as e:
                with polls.slot("video", "w3"):
                    pass
            assert e.value.details["limit_name"] == NAMESPACE_POLLS
            assert "namespace 'video' already has 3 open polls" in e.value.message
            with polls.slot("reports", "w1"):  # another namespace has its own slots
                assert polls.open_polls("reports") == 1
        assert polls.open_polls("video") == 2 and polls.open_polls("video", "w1") == 2
    assert polls.open_polls("video") == 0 and polls.open_polls("video", "w1") == 0
    assert polls._by_namespace == {} and polls._by_identity == {}


def test_a_poll_that_fails_gives_its_slot_back() -> None:
    polls = LongPollLimiter(lambda key, ns: 1 if key == NAMESPACE_POLLS else 0)
    with pytest.raises(RuntimeError), polls.slot("video", "w1"):
        raise RuntimeError("the poll failed")
    with polls.slot("video", "w1"):
        assert polls.open_polls("video") == 1


def test_dynamic_config_overrides_the_static_limits(tmp_path: Path) -> None:
    from cadenza.engine.frontend import Frontend
    from cadenza.ops.dynamic_config import DynamicConfig

    f = tmp_path / "dc.yaml"
    f.write_text(
        "frontend.namespaceRPS:\n  - value: 7\n    constraints: {namespace: video}\n"
        "frontend.rps:\n  - value: 50\n"
    )
    fe = Frontend.__new__(Frontend)  # only the limit lookup is exercised
    fe.overload_limits = FrontendLimits(rps=100, namespace_rps=20, namespace_count=9)
    fe.dynamic_config = None
    assert fe._limit(NAMESPACE_RPS, "video") == 20 and fe._limit(HOST_RPS, "") == 100
    fe.dynamic_config = DynamicConfig(f)
    assert fe._limit(NAMESPACE_RPS, "video") == 7
    assert fe._limit(NAMESPACE_RPS, "reports") == 20  # no entry matches: the static value
    assert fe._limit(HOST_RPS, "") == 50
    assert fe._limit(NAMESPACE_POLLS, "video") == 9


def test_static_limits_in_the_server_config_are_validated_naming_the_key() -> None:
    from pydantic import ValidationError

    from cadenza.ops.overload_config import FrontendLimitsConfig

    config = FrontendLimitsConfig.model_validate({"namespaceRPS": 5, "namespaceCount": 10})
    assert config.to_engine() == FrontendLimits(
        rps=0, namespace_rps=5, namespace_count=10, namespace_count_per_identity=600
    )
    with pytest.raises(ValidationError) as e:
        FrontendLimitsConfig.model_validate({"namespaceRPS": -1, "namespaceRps": 3})
    text = str(e.value)
    assert "namespaceRPS" in text and "greater than or equal to 0" in text
    assert "namespaceRps" in text and "Extra inputs are not permitted" in text


def test_the_server_config_carries_the_static_limits_to_the_frontend(tmp_path: Path) -> None:
    from cadenza.ops.config import ConfigError, load_config, settings_from_config

    base = (
        "persistence:\n  defaultStore: s\n  datastores:\n    s:\n      sqlite: {databaseName: ':memory:'}\n"
    )
    good = tmp_path / "good.yaml"
    good.write_text(base + "services:\n  frontend:\n    limits: {rps: 300, namespaceRPS: 40}\n")
    settings = settings_from_config(load_config(good), good)
    assert settings.frontend_limits == FrontendLimits(rps=300, namespace_rps=40)
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "services:\n  frontend:\n    limits: {namespaceRPS: lots}\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert "services.frontend.limits.namespaceRPS" in str(e.value) and str(bad) in str(e.value)
