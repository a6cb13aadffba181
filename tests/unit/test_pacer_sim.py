"""The pacer against simulated servers: told nothing, it must reach the server's capacity with
almost no throttle replies, and keep its promises (no speed-up during throttles, ceilings)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simserver import ServerModel, SimResult, simulate

from mailpacer.core.classify import Verdict
from mailpacer.pacing.pacer import Limits, PacerConfig

MESSAGES = 2000
WARM_UP = 500

NAMED = {
    "strict": ServerModel(max_connections=2, service_time=0.1),
    "many-connections": ServerModel(max_connections=8, service_time=0.3),
    "exchange-like": ServerModel(max_connections=3, service_time=0.2, rate_per_second=0.5, burst=5),
    "rate-limited": ServerModel(max_connections=8, service_time=0.1, rate_per_second=20, burst=20),
    "anvil-like": ServerModel(max_connections=5, service_time=0.15, rate_per_second=2, burst=10),
    "ses-like": ServerModel(
        max_connections=4,
        service_time=0.05,
        connect_time=0.2,
        rate_per_second=14,
        burst=14,
        per_connection=50,
    ),
    "strict-bucket": ServerModel(max_connections=4, service_time=0.05, rate_per_second=25, burst=1),
    "per-connection": ServerModel(
        max_connections=3, service_time=0.05, connect_time=0.2, per_connection=20
    ),
}


def check(result: SimResult) -> None:
    """The promises: near capacity after the warm-up, ≤ 1 throttle per 100, none broken."""
    assert result.violations == []
    assert len(result.accepted_at) == MESSAGES
    assert 0.95 <= result.ratio(WARM_UP) <= 1.05, result.ratio(WARM_UP)
    assert result.throttles_per_100() <= 1.0, result.verdicts


@pytest.mark.parametrize("name", list(NAMED))
def test_named_server_models(name: str) -> None:
    """Each typical server shape is driven to ≥ 95% of its capacity, ≤ 1 throttle per 100."""
    check(simulate(NAMED[name], MESSAGES))


def test_strict_server_limit_is_learned_exactly() -> None:
    """Two connections with a 421 greeting: the pacer learns exactly 2, after one refusal."""
    result = simulate(NAMED["strict"], MESSAGES)
    assert result.pacer.limits.connections == 2
    assert result.verdicts[Verdict.THROTTLE_CONNECTIONS] <= 2
    assert result.pacer.limits.describe() == "2 connections"


def test_per_connection_cap_is_learned_from_one_refusal() -> None:
    """A 20-per-session server is learned after a single refusal; afterwards only the probes
    that test it (after 200, 400, 800 clean messages) meet it again."""
    result = simulate(NAMED["per-connection"], MESSAGES)
    assert result.pacer.limits.messages_per_connection == 20
    assert result.verdicts[Verdict.THROTTLE_PER_CONNECTION] <= 3 + 3


def test_learned_limits_make_the_next_campaign_clean() -> None:
    """A second campaign that starts from the learned limits is at capacity from its start."""
    model = NAMED["exchange-like"]
    first = simulate(model, 1000)
    second = simulate(model, 1000, learned=first.pacer.limits)
    assert second.violations == []
    assert second.throttles < first.throttles
    assert second.ratio(0) >= 0.95
    assert first.pacer.limits.rate_per_minute == pytest.approx(30, rel=0.05)


def test_ceilings_hold_in_a_whole_campaign() -> None:
    """Configured ceilings are never exceeded, even when the server would allow more."""
    ceilings = Limits(connections=2, rate_per_minute=300)
    result = simulate(ServerModel(max_connections=8, service_time=0.05), 1000, ceilings=ceilings)
    assert result.violations == []
    assert result.max_target <= 2
    assert result.throughput(100) == pytest.approx(5.0, rel=0.02)


def test_quota_without_a_known_window() -> None:
    """A quota per window: the pacer waits, probes, learns the quota; nothing is lost."""
    model = ServerModel(max_connections=2, service_time=0.1, quota=200, quota_window=300.0)
    result = simulate(model, 1000, config=PacerConfig(quota_wait_seconds=300))
    assert result.violations == []
    assert len(result.accepted_at) == 1000
    assert result.pacer.limits.quota == 200
    assert result.verdicts[Verdict.QUOTA] <= 2 * 5  # at most the in-flight pair per window
    assert result.elapsed < 5 * 300 + 60


def test_quota_with_a_known_window_is_respected_before_the_server_says_so() -> None:
    """With the window known, one quota reply teaches the quota; later windows hit none."""
    model = ServerModel(max_connections=2, service_time=0.1, quota=200, quota_window=300.0)
    result = simulate(model, 1000, ceilings=Limits(quota_window_seconds=300))
    assert result.violations == []
    assert len(result.accepted_at) == 1000
    assert result.verdicts[Verdict.QUOTA] <= 2
    assert result.elapsed < 5 * 300


@st.composite
def server_models(draw: st.DrawFn) -> ServerModel:
    """Servers of every common shape: connection caps, rate limits up to ten times below what
    the connections could do, bursts, per-connection caps."""
    connections = draw(st.integers(min_value=1, max_value=8))
    service = draw(st.floats(min_value=0.02, max_value=0.5))
    rate = draw(
        st.one_of(
            st.none(),
            st.floats(min_value=0.1, max_value=1.5).map(lambda f: f * connections / service),
        )
    )
    return ServerModel(
        max_connections=connections,
        service_time=service,
        connect_time=draw(st.floats(min_value=0.01, max_value=0.3)),
        rate_per_second=rate,
        burst=draw(st.integers(min_value=2, max_value=25)),
        per_connection=draw(st.one_of(st.none(), st.integers(min_value=10, max_value=200))),
    )


@settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(model=server_models())
def test_converges_on_any_server(model: ServerModel) -> None:
    """Told nothing, on any such server: ≥ 95% of capacity after the warm-up, ≤ 1 throttle reply
    per 100 messages, never faster during a run of throttles, never above a fresh limit."""
    check(simulate(model, MESSAGES))


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    model=server_models(),
    connections=st.integers(min_value=1, max_value=4),
    per_minute=st.floats(min_value=6, max_value=3000),
)
def test_ceilings_are_never_exceeded(
    model: ServerModel, connections: int, per_minute: float
) -> None:
    """Whatever the server, configured ceilings on connections and rate are never exceeded."""
    ceilings = Limits(connections=connections, rate_per_minute=per_minute)
    result = simulate(model, 300, ceilings=ceilings)
    assert result.violations == []
    assert result.max_target <= connections
    assert all(r is None or r <= per_minute / 60 + 1e-9 for r in result.rates)


# ---- refutation and healing (issue #15) ------------------------------------------------------

EXCHANGE_RATE = (
    "421 4.4.2 Message submission rate for this client has exceeded the configured limit, "
    "closing transmission channel"
)
SHAPES = {
    "anvil fixed window": ServerModel(max_connections=2, service_time=0.02, window_shape="fixed"),
    "sliding window": ServerModel(
        max_connections=3,
        service_time=0.05,
        window_shape="sliding",
        window_count=60,
        window_seconds=20.0,
    ),
    "per-minute counter": ServerModel(
        max_connections=3,
        service_time=0.05,
        window_shape="fixed",
        window_count=120,
        window_seconds=60.0,
    ),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_rate_windows_are_read_as_windows(name: str) -> None:
    """A limiter that counts per window (anvil, sliding, per minute) is learned as a count per
    window, not timed as a slow rate: ≥ 95% of capacity after the warm-up, few throttles."""
    model = SHAPES[name]
    result = simulate(model, MESSAGES)
    assert result.violations == []
    assert len(result.accepted_at) == MESSAGES
    assert result.ratio(WARM_UP) >= 0.95, result.ratio(WARM_UP)
    assert result.throttles_per_100() <= 1.5, result.verdicts
    limits = result.pacer.limits
    assert limits.window_messages == model.window_count
    assert limits.window_seconds is not None
    assert model.window_seconds <= limits.window_seconds <= 1.1 * model.window_seconds
    assert limits.rate_per_minute is None  # the timing was refuted
    assert any("messages per" in said for said in result.pacer.explanations)


def test_postfix_anvil_campaign_reaches_ninety_percent_overall() -> None:
    """600 messages through anvil's 2 connections and 50 per 10 s, told nothing: ≥ 90% of the
    5 messages/s over the whole campaign, learning included (the issue measured 5%)."""
    result = simulate(SHAPES["anvil fixed window"], 600)
    assert result.violations == []
    assert 600 / result.elapsed >= 0.9 * 5.0, result.elapsed


def test_a_cap_worded_as_a_rate_is_read_as_a_cap() -> None:
    """Exchange's "submission rate" words on a 30-per-connection cap: every refusal comes at a
    connection's 30th message, so it is a cap; the rate they taught is refuted."""
    model = ServerModel(
        max_connections=3,
        service_time=0.05,
        connect_time=0.1,
        per_connection=30,
        per_connection_verdict=Verdict.THROTTLE_RATE,
        per_connection_reply=EXCHANGE_RATE,
    )
    result = simulate(model, MESSAGES)
    check(result)
    assert result.pacer.limits.messages_per_connection == 30
    assert result.pacer.limits.rate_per_minute is None
    said = " ".join(result.pacer.explanations)
    assert "suggest a rate" in said and "30 messages per connection" in said


def test_a_sink_gets_no_more_connections_than_add_throughput() -> None:
    """A server that never refuses a connection but has 4 workers: told nothing, connections
    stop growing soon after they stop adding messages/s (the issue saw 86)."""
    model = ServerModel(max_connections=1000, service_time=0.05, workers=4)
    result = simulate(model, MESSAGES)
    assert result.violations == []
    assert result.ratio(WARM_UP) >= 0.95
    assert result.max_target <= 10


@pytest.mark.parametrize(
    ("model", "wrong"),
    [
        (
            ServerModel(max_connections=4, service_time=0.05, rate_per_second=20, burst=5),
            Limits(rate_per_minute=0.23 * 20 * 60),
        ),
        (ServerModel(max_connections=4, service_time=0.1), Limits(connections=1)),
        (
            ServerModel(max_connections=3, service_time=0.05, connect_time=0.2),
            Limits(messages_per_connection=5),
        ),
    ],
    ids=["rate-23%", "1-connection-of-4", "5-per-connection"],
)
def test_a_wrong_persisted_limit_heals(model: ServerModel, wrong: Limits) -> None:
    """A wrong limit persisted by an earlier campaign starts this one but does not cap it: by
    message 300 the pace is back to ≥ 85% of capacity, with ≤ 1 throttle per 100."""
    result = simulate(model, 1000, learned=wrong)
    assert result.violations == []
    assert result.ratio(300) >= 0.85, result.ratio(300)
    assert result.throttles_per_100() <= 1.0
