"""Retry backoff maths: growth, caps, jitter bounds, hints, giving up; no test sleeps."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpacer.core.errors import ConfigError
from mailpacer.core.retry import RetryPolicy, backoff_delay, next_retry

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(min_value=1, max_value=30),
    max_age_seconds=st.floats(min_value=1, max_value=30 * 86400),
    base_seconds=st.floats(min_value=0, max_value=600),
    cap_seconds=st.floats(min_value=600, max_value=86400),
    jitter=st.floats(min_value=0, max_value=0.9),
    multiplier=st.floats(min_value=1, max_value=10),
)


def test_defaults_are_production_values() -> None:
    """Defaults: 12 attempts, 5 seconds growing to at most 4 hours, give up after 3 days."""
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_seconds, policy.cap_seconds) == (12, 5.0, 14400.0)
    assert policy.max_age_seconds == 3 * 86400


def test_delays_without_jitter_double_then_cap() -> None:
    """With no jitter the delays are 5, 20, 80 … seconds until the four-hour cap: twelve
    attempts (eleven delays) span most of a day, within the three-day age limit."""
    policy = RetryPolicy(jitter=0.0)
    rng = random.Random(1)
    delays = [backoff_delay(policy, n, rng) for n in range(1, 12)]
    assert delays == [5, 20, 80, 320, 1280, 5120, *[14400] * 5]
    assert 20 * 3600 < sum(delays) < policy.max_age_seconds


def test_next_retry_is_a_timestamp_after_now() -> None:
    """next_retry returns ``now`` plus the delay, on the caller's clock."""
    policy = RetryPolicy(jitter=0.0)
    at = next_retry(
        policy, attempts=2, first_attempt_at=1000, now=1100, hint=None, rng=random.Random()
    )
    assert at == 1100 + 20


def test_hint_is_honoured_and_clamped() -> None:
    """A greylist hint replaces the backoff; absurd hints are cut, negative ones mean now."""
    policy = RetryPolicy(max_hint_seconds=600)
    rng = random.Random(0)
    kw = {"attempts": 1, "first_attempt_at": 0.0, "now": 10.0, "rng": rng}
    assert next_retry(policy, hint=300.0, **kw) == 310.0  # type: ignore[arg-type]
    assert next_retry(policy, hint=10_000.0, **kw) == 610.0  # type: ignore[arg-type]
    assert next_retry(policy, hint=-5.0, **kw) == 10.0  # type: ignore[arg-type]
    assert next_retry(policy, hint=math.inf, **kw) is not None  # type: ignore[arg-type]


def test_gives_up_after_max_attempts() -> None:
    """The attempt that reaches max_attempts is the last one."""
    policy = RetryPolicy(max_attempts=3)
    rng = random.Random(0)
    assert next_retry(policy, attempts=2, first_attempt_at=0, now=0, hint=None, rng=rng) is not None
    assert next_retry(policy, attempts=3, first_attempt_at=0, now=0, hint=None, rng=rng) is None


def test_gives_up_past_max_age() -> None:
    """A retry that would land past max_age after the first attempt is not scheduled."""
    policy = RetryPolicy(max_age_seconds=3600, base_seconds=60, jitter=0.0)
    rng = random.Random(0)
    assert next_retry(policy, attempts=1, first_attempt_at=0, now=3560, hint=None, rng=rng) is None
    assert next_retry(policy, attempts=1, first_attempt_at=0, now=3000, hint=None, rng=rng) == 3060


def test_floor_lengthens_short_delays_only() -> None:
    """A floor (greylisting without a hint) raises a 5 s backoff to 60 s, leaves longer ones and
    hints alone."""
    policy = RetryPolicy(jitter=0.0)
    rng = random.Random(0)
    kw = {"first_attempt_at": 0.0, "now": 0.0, "rng": rng, "floor": 60.0}
    assert next_retry(policy, attempts=1, hint=None, **kw) == 60.0  # type: ignore[arg-type]
    assert next_retry(policy, attempts=4, hint=None, **kw) == 320.0  # type: ignore[arg-type]
    assert next_retry(policy, attempts=1, hint=15.0, **kw) == 15.0  # type: ignore[arg-type]


def test_huge_attempt_counts_stay_at_the_cap() -> None:
    """Thousands of attempts do not overflow the power: the delay is the cap."""
    policy = RetryPolicy(multiplier=10.0, jitter=0.0)
    assert backoff_delay(policy, 5000, random.Random(0)) == policy.cap_seconds


def test_fast_policy_for_tests() -> None:
    """The test-mode policy keeps every delay under a tenth of a second."""
    policy = RetryPolicy.fast()
    rng = random.Random(0)
    assert all(backoff_delay(policy, n, rng) <= 0.05 for n in range(1, 50))
    assert policy.max_attempts == 3


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_age_seconds": 0}, "max_age_seconds"),
        ({"base_seconds": -1}, "base_seconds"),
        ({"cap_seconds": 10, "base_seconds": 20}, "cap_seconds"),
        ({"jitter": 1.0}, "jitter"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"max_hint_seconds": -1}, "max_hint_seconds"),
        ({"max_age_seconds": math.inf}, "max_age_seconds"),
    ],
)
def test_bad_policy_is_a_config_error(kwargs: dict[str, float], key: str) -> None:
    """Nonsense values are refused when the policy is built, naming the field."""
    with pytest.raises(ConfigError) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


@given(policy=policies, attempts=st.integers(min_value=1, max_value=10_000), seed=st.integers())
def test_delay_is_never_negative_and_capped(policy: RetryPolicy, attempts: int, seed: int) -> None:
    """Every delay is within [0, cap] and within the jitter band around the un-jittered value."""
    delay = backoff_delay(policy, attempts, random.Random(seed))
    try:
        plain = min(policy.cap_seconds, policy.base_seconds * policy.multiplier ** (attempts - 1))
    except OverflowError:
        plain = policy.cap_seconds
    assert 0 <= delay <= policy.cap_seconds
    assert plain * (1 - policy.jitter) - 1e-9 <= delay <= plain * (1 + policy.jitter) + 1e-9


@given(policy=policies, seed=st.integers())
def test_delays_grow_without_jitter(policy: RetryPolicy, seed: int) -> None:
    """Without jitter each delay is at least the one before it."""
    plain = RetryPolicy(
        base_seconds=policy.base_seconds,
        cap_seconds=policy.cap_seconds,
        multiplier=policy.multiplier,
        jitter=0.0,
    )
    rng = random.Random(seed)
    delays = [backoff_delay(plain, n, rng) for n in range(1, 40)]
    assert delays == sorted(delays)


@given(
    policy=policies,
    attempts=st.integers(min_value=1, max_value=40),
    first=st.floats(min_value=0, max_value=1e6),
    age=st.floats(min_value=0, max_value=40 * 86400),
    hint=st.one_of(st.none(), st.floats(min_value=-10, max_value=1e6)),
    seed=st.integers(),
)
def test_next_retry_bounds(
    policy: RetryPolicy, attempts: int, first: float, age: float, hint: float | None, seed: int
) -> None:
    """A scheduled retry is never before now, never past max age, never after max attempts."""
    now = first + age
    at = next_retry(
        policy,
        attempts=attempts,
        first_attempt_at=first,
        now=now,
        hint=hint,
        rng=random.Random(seed),
    )
    if attempts >= policy.max_attempts:
        assert at is None
    if at is not None:
        assert now <= at <= first + policy.max_age_seconds
        if hint is not None and 0 <= hint <= policy.max_hint_seconds:
            assert at == pytest.approx(now + hint)


def test_a_fault_of_one_message_while_the_route_works_is_retried_soon() -> None:
    """Issue 15.5: a transient fault on a message's sixth attempt waits the ladder's sixth rung
    when the route is failing, but only a second (``isolated_seconds``) while the server
    accepts others;
    the attempt still counts, so max_attempts still ends it. A greylisting with a hint waits
    exactly the hint, whatever the attempt."""
    from mailpacer.core.classify import Classification, Phase, Reply, Verdict
    from mailpacer.core.outcome import decide
    from mailpacer.core.states import MessageState

    policy = RetryPolicy(jitter=0.0)
    reply = Reply(451, "4.3.0 temporary failure", Phase.DATA_END)
    fault = Classification(Verdict.TRANSIENT, "4.3.0", None, "transient")

    def retry_in(**kw: object) -> float:
        [d] = decide(reply, fault, attempts=5, first_attempt_at=0.0, now=100.0,
                     policy=policy, rng=random.Random(1), **kw)  # type: ignore[arg-type]  # fmt: skip
        assert d.state is MessageState.DEFERRED and d.count_attempt and d.retry_at is not None
        return d.retry_at - 100.0

    assert retry_in(route_accepting=True) == 1.0
    assert retry_in(route_accepting=False) == 5.0 * 4**5
    grey = Classification(Verdict.GREYLIST, "4.7.1", 3.0, "greylist")
    [d] = decide(reply, grey, attempts=7, first_attempt_at=0.0, now=100.0, policy=policy,
                 rng=random.Random(1))  # fmt: skip
    assert d.retry_at == 103.0
    [last] = decide(reply, fault, attempts=11, first_attempt_at=0.0, now=100.0, policy=policy,
                    rng=random.Random(1), route_accepting=True)  # fmt: skip
    assert last.state is MessageState.FAILED
