"""Sharing a route between processes, the pure parts: fair shares of the connection slots, when
a process gives one back, the limits patch a process publishes, and a pacer adopting another
process's lessons (stricter only). No store, no sockets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from simserver import FakeClock

from mailpacer.core.classify import Verdict
from mailpacer.core.limits import Limits
from mailpacer.delivery.shares import fair_shares, limits_patch, must_yield
from mailpacer.pacing.pacer import Pacer


def test_fair_shares_meet_small_wants_first_then_split_the_rest() -> None:
    """Four slots among a process that wants one and two that want four: 1, 2, 1 (the odd
    one goes in holder order); nobody gets more than it wants."""
    assert fair_shares(4, {"a": 1, "b": 4, "c": 4}) == {"a": 1, "b": 2, "c": 1}
    assert fair_shares(2, {"a": 0, "b": 5}) == {"a": 0, "b": 2}
    assert fair_shares(0, {"a": 3}) == {"a": 0}
    assert fair_shares(9, {"a": 1, "b": 2}) == {"a": 1, "b": 2}


@given(st.integers(0, 50), st.dictionaries(st.text(max_size=3), st.integers(0, 20), max_size=6))
def test_fair_shares_never_hand_out_more_than_the_limit_or_the_wants(
    limit: int, wants: dict[str, int]
) -> None:
    """Whatever the wants, the shares add up to the limit or to every want, whichever is less,
    and no two shares differ by more than one unless the smaller one is all its holder wants."""
    shares = fair_shares(limit, wants)
    assert sum(shares.values()) == min(limit, sum(wants.values()))
    assert all(0 <= shares[h] <= wants[h] for h in wants)
    for a in wants:
        for b in wants:
            assert shares[a] >= shares[b] - 1 or shares[a] == wants[a]


def test_a_process_above_its_share_yields_only_to_one_that_is_short() -> None:
    """Holding both slots while another process wants one: give one back; nobody else
    wanting, or the other already holding its share: keep them."""
    assert must_yield("a", 2, {"a": 2, "b": 2}, {"a": 2, "b": 0})
    assert not must_yield("a", 2, {"a": 2, "b": 0}, {"a": 2, "b": 0})
    assert not must_yield("a", 2, {"a": 2, "b": 2}, {"a": 1, "b": 1})
    assert not must_yield("b", 2, {"a": 2, "b": 2}, {"a": 2, "b": 0})


def test_the_patch_carries_only_what_changed() -> None:
    """A process publishes the limits it changed and the sentences that changed (a removed
    one as ``None``), so another process's lesson about another limit survives."""
    before = Limits(connections=2, evidence=(("connections", "x"),)).to_dict()
    after = Limits(
        connections=2, rate_per_minute=60.0, evidence=(("rate_per_minute", "y"),)
    ).to_dict()
    assert limits_patch(before, after) == {
        "rate_per_minute": 60.0,
        "evidence": {"connections": None, "rate_per_minute": "y"},
    }
    assert limits_patch(after, after) == {}


def test_a_pacer_adopts_stricter_limits_with_their_evidence() -> None:
    """Another process learned 2 connections and 30 messages a minute: a pacer that knew
    nothing takes both (target, pace, the sentence why); a looser lesson later changes
    nothing; a stricter per-connection cap is taken too."""
    clock = FakeClock()
    pacer = Pacer(clock)
    for _ in range(3):
        pacer.on_connected(3)
        pacer.observe(Verdict.ACCEPTED, open_connections=3, backlog=True)
    lesson = Limits(
        connections=2,
        rate_per_minute=30.0,
        evidence=(("connections", "the server refused a 3rd connection → 2 connections"),),
    )
    assert pacer.adopt(lesson) == ["connections", "rate_per_minute"]
    assert pacer.limits.connections == 2 and pacer.target_connections <= 2
    rate = pacer.rate_per_second
    assert rate is not None and rate <= 0.5
    assert pacer.explanations == ["the server refused a 3rd connection → 2 connections"]
    assert pacer.adopt(Limits(connections=5, rate_per_minute=600.0)) == []
    assert pacer.adopt(Limits(messages_per_connection=20)) == ["messages_per_connection"]
    assert pacer.messages_per_connection == 20
    assert pacer.adopt(Limits(messages_per_connection=50)) == []
