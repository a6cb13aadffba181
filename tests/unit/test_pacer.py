"""The pacer, rule by rule, with a fake clock; and its Limits value object."""

from __future__ import annotations

import json
import math

import pytest
from simserver import FakeClock

from mailpacer.core.classify import Verdict
from mailpacer.core.errors import ConfigError
from mailpacer.pacing.pacer import Limits, Pacer, PacerConfig
from mailpacer.pacing.rate import RoomTimer

V = Verdict


def make(**kwargs: object) -> tuple[Pacer, FakeClock]:
    """A pacer on a fake clock at t=0."""
    clock = FakeClock()
    return Pacer(clock, **kwargs), clock  # type: ignore[arg-type]


def accept(
    pacer: Pacer, clock: FakeClock, n: int, *, gap: float = 0.1, backlog: bool = True
) -> None:
    """n messages accepted ``gap`` seconds apart on all open connections (reserve, then observe)."""
    for _ in range(n):
        clock.now += pacer.reserve() + gap
        pacer.observe(V.ACCEPTED, open_connections=pacer.target_connections, backlog=backlog)


def connect_all(pacer: Pacer) -> None:
    """Open connections up to the target, as the engine would."""
    pacer.on_connected(pacer.target_connections)


# ---- Limits --------------------------------------------------------------------------------


def test_limits_round_trip_through_a_dict() -> None:
    """to_dict / from_dict keep every field; unknown keys from newer versions are ignored."""
    limits = Limits(2, 120.0, 100, 2000, 86400.0)
    data = limits.to_dict()
    assert data == {
        "connections": 2,
        "rate_per_minute": 120.0,
        "messages_per_connection": 100,
        "quota": 2000,
        "quota_window_seconds": 86400.0,
        "window_messages": None,
        "window_seconds": None,
        "evidence": {},
    }
    assert Limits.from_dict({**data, "colour": "red"}) == limits
    assert Limits.from_dict({}) == Limits()


def test_limits_from_an_older_version_load_and_evidence_round_trips() -> None:
    """A dict stored before windows and evidence existed still loads; evidence survives JSON."""
    old = {"connections": 2, "rate_per_minute": 120.0, "messages_per_connection": None}
    assert Limits.from_dict(old) == Limits(connections=2, rate_per_minute=120.0)
    said = (("connections", "the server refused a 3rd connection with 421 → 2 connections"),)
    limits = Limits(connections=2, window_messages=50, window_seconds=10.0, evidence=said)
    again = Limits.from_dict(json.loads(json.dumps(limits.to_dict())))
    assert again == limits
    assert again.explanations == [said[0][1]]
    assert again.describe() == "2 connections, 50 messages per 10 seconds"


@pytest.mark.parametrize(
    ("limits", "text"),
    [
        (
            Limits(2, 120.0, 100),
            "2 connections, about 120 messages a minute, 100 messages per connection",
        ),
        (Limits(connections=1, rate_per_minute=2.5), "1 connection, about 2.5 messages a minute"),
        (
            Limits(rate_per_minute=0.5, messages_per_connection=1),
            "about 30.0 messages an hour, 1 message per connection",
        ),
        (Limits(quota=2000, quota_window_seconds=86400), "2000 messages per day"),
        (Limits(quota=500, quota_window_seconds=7200), "500 messages per 2 hours"),
        (Limits(quota=10, quota_window_seconds=90), "10 messages per 90 seconds"),
        (Limits(quota=10), "10 messages per quota window"),
        (Limits(), "no limits learned yet"),
    ],
)
def test_limits_describe_for_humans(limits: Limits, text: str) -> None:
    """describe() says what the server allows in plain words."""
    assert limits.describe() == text


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"connections": 0}, "connections"),
        ({"rate_per_minute": -1.0}, "rate_per_minute"),
        ({"quota": math.inf}, "quota"),
        ({"messages_per_connection": True}, "messages_per_connection"),
        ({"quota_window_seconds": "1h"}, "quota_window_seconds"),
    ],
)
def test_bad_limits_are_config_errors(kwargs: dict[str, object], key: str) -> None:
    """Zero, negative, infinite or non-numeric limits are refused, naming the field."""
    with pytest.raises(ConfigError) as info:
        Limits(**kwargs)  # type: ignore[arg-type]
    assert info.value.key == key


# ---- starting state -------------------------------------------------------------------------


def test_told_nothing_starts_with_one_connection_and_no_rate() -> None:
    """A fresh pacer: one connection, no pacing, nothing blocked, no per-connection cap."""
    pacer, _ = make()
    assert repr(pacer) == "<Pacer connections=0/1 rate=unlimited ramping>"
    assert pacer.reserve() == 0.0
    assert pacer.blocked_for() == 0.0
    assert pacer.messages_per_connection is None
    assert pacer.limits == Limits()


def test_learned_limits_are_the_starting_point() -> None:
    """Learned limits start the pacer there: connections at the limit, rate just under it."""
    pacer, _ = make(learned=Limits(connections=3, rate_per_minute=120, messages_per_connection=40))
    assert pacer.target_connections == 3
    assert pacer.rate_per_second == pytest.approx(0.95 * 2)
    assert pacer.messages_per_connection == 40
    assert repr(pacer) == "<Pacer connections=0/3 rate=1.9/s steady>"
    assert pacer.limits.describe() == (
        "3 connections, about 120 messages a minute, 40 messages per connection"
    )


def test_ceilings_are_hard() -> None:
    """Configured ceilings bound the connections, the pace and the per-connection count."""
    pacer, clock = make(
        learned=Limits(connections=5, rate_per_minute=600),
        ceilings=Limits(connections=2, rate_per_minute=60, messages_per_connection=10),
    )
    assert pacer.target_connections == 2
    assert pacer.rate_per_second == 1.0
    assert pacer.messages_per_connection == 10
    waits = [pacer.reserve() for _ in range(3)]
    assert waits == [0.0, 1.0, 2.0]
    connect_all(pacer)
    accept(pacer, clock, 500, gap=1.0)
    assert pacer.target_connections == 2
    assert pacer.rate_per_second == 1.0


# ---- connections ---------------------------------------------------------------------------


def test_connections_grow_while_every_slot_is_busy() -> None:
    """+1 connection after each connection-count worth of successes, only with a backlog."""
    pacer, clock = make()
    connect_all(pacer)
    accept(pacer, clock, 1)
    assert pacer.target_connections == 2
    connect_all(pacer)
    accept(pacer, clock, 2)
    assert pacer.target_connections == 3
    connect_all(pacer)
    accept(pacer, clock, 50, backlog=False)
    assert pacer.target_connections == 3  # no backlog: no growth


def test_connection_throttle_sets_the_limit_and_probes_only_after_quiet() -> None:
    """A 421 greeting with 2 working connections makes 2 the limit; one more only after 60 s."""
    pacer, clock = make()
    for _ in range(3):
        connect_all(pacer)
        accept(pacer, clock, pacer.target_connections)
    assert pacer.target_connections == 4
    pacer.observe(V.THROTTLE_CONNECTIONS, open_connections=3, backlog=True)
    assert (pacer.target_connections, pacer.limits.connections) == (3, 3)
    assert repr(pacer) == "<Pacer connections=3/3 rate=unlimited throttled>"
    accept(pacer, clock, 300, gap=0.1)  # 30 s: not quiet long enough to probe
    assert pacer.target_connections == 3
    assert repr(pacer) == "<Pacer connections=3/3 rate=unlimited steady>"
    throttled_at = clock.now - 30
    while pacer.target_connections == 3 and clock.now < 1000:
        accept(pacer, clock, 1, gap=0.1)
    assert pacer.target_connections == 4
    assert clock.now - throttled_at == pytest.approx(60, abs=0.2)
    pacer.on_connected(3)
    assert repr(pacer) == "<Pacer connections=3/4 rate=unlimited probing>"


def test_failed_probe_doubles_the_quiet_period() -> None:
    """A probe refused again waits twice as long before the next probe."""
    pacer, clock = make(learned=Limits(connections=2))
    connect_all(pacer)
    while pacer.target_connections == 2 and clock.now < 1000:
        accept(pacer, clock, 1, gap=0.1)
    assert clock.now == pytest.approx(10, abs=0.2)  # a persisted limit is probed soon
    pacer.observe(V.THROTTLE_CONNECTIONS, open_connections=2, backlog=True)
    assert pacer.target_connections == 2
    started = clock.now
    while pacer.target_connections == 2 and clock.now - started < 1000:
        accept(pacer, clock, 1, gap=0.5)
    assert clock.now - started == pytest.approx(20, abs=1)


def test_successful_probe_raises_the_limit() -> None:
    """A probe connection that works becomes part of the limit."""
    pacer, clock = make(learned=Limits(connections=2))
    connect_all(pacer)
    accept(pacer, clock, 101, gap=0.1)  # a persisted limit is probed after 10 quiet seconds
    pacer.on_connected(3)
    accept(pacer, clock, 3)
    assert pacer.limits.connections == 3


def test_no_slot_at_all_blocks_the_route_with_backoff() -> None:
    """When even the first connection is refused the route waits 5 s, then 10 s, ..."""
    pacer, clock = make()
    pacer.observe(V.THROTTLE_CONNECTIONS, open_connections=0, backlog=True)
    assert pacer.blocked_for() == 5.0
    assert repr(pacer) == "<Pacer connections=0/1 rate=unlimited blocked>"
    clock.now += 5
    pacer.observe(V.THROTTLE_CONNECTIONS, open_connections=0, backlog=True)
    assert pacer.blocked_for() == 10.0
    clock.now += 10
    pacer.on_connected(1)
    pacer.observe(V.THROTTLE_CONNECTIONS, open_connections=0, backlog=True)
    assert pacer.blocked_for() == 5.0  # a connection got in: the backoff starts over


def test_refusal_within_the_limit_steps_down_by_one() -> None:
    """A 421 while below the known limit (the server has less room now) lowers it by one."""
    pacer, _ = make(learned=Limits(connections=4))
    pacer.observe(V.THROTTLE_CONNECTIONS, open_connections=1, backlog=True)
    assert pacer.limits.connections == 3


# ---- rate -------------------------------------------------------------------------------------


def test_first_rate_throttle_paces_under_what_passed() -> None:
    """Unpaced and throttled: the pace becomes half of the accepted rate just measured, and
    the next slot is one slot away (the server has no room right now)."""
    pacer, clock = make()
    connect_all(pacer)
    accept(pacer, clock, 20, gap=0.1)  # 10 messages a second passed
    pacer.observe(V.THROTTLE_RATE, open_connections=1, backlog=True)
    assert pacer.rate_per_second == pytest.approx(5.0)
    assert [round(pacer.reserve(), 6) for _ in range(3)] == [0.2, 0.4, 0.6]
    assert repr(pacer) == "<Pacer connections=1/1 rate=5.0/s throttled>"


def test_a_throttle_holds_new_slots_until_the_booked_ones_had_room() -> None:
    """The server has no room at a throttle: slots booked before it take the room it makes
    first, so the next new slot starts one slot after each of them."""
    pacer, _ = make(learned=Limits(rate_per_minute=600))
    pacer.on_connected(3)
    for _ in range(3):
        pacer.reserve()  # three connections each hold a booking
    pacer.observe(V.THROTTLE_RATE, open_connections=3, backlog=True)  # one of them answered
    pace = pacer.rate_per_second
    assert pace is not None
    assert pacer.reserve() == pytest.approx(3 / pace)  # two still booked, then this one


def test_rate_is_timed_between_two_throttles() -> None:
    """Two throttles a second apart with 20 messages accepted between them: the server allows
    about 20 a second, so the pace goes just under that."""
    pacer, clock = make()
    connect_all(pacer)
    accept(pacer, clock, 30, gap=0.01)  # the server's burst, at 100 a second
    pacer.observe(V.THROTTLE_RATE, open_connections=1, backlog=True)
    assert pacer.rate_per_second == pytest.approx(50.0)
    for _ in range(20):  # the server lets one through every 50 ms
        clock.now += max(pacer.reserve(), 0.05)
        pacer.observe(V.ACCEPTED, open_connections=1, backlog=True)
    clock.now += 0.01
    pacer.reserve()
    pacer.observe(V.THROTTLE_RATE, open_connections=1, backlog=True)
    assert pacer.rate_per_second == pytest.approx(0.95 * 20, rel=0.03)
    assert pacer.limits.rate_per_minute == pytest.approx(20 * 60, rel=0.15)


def test_room_timer_bounds_the_rate_and_refines_with_late_answers() -> None:
    """Between two throttles, (passed - 1) / span and (passed + 1 + in flight) / span bound the
    rate; a message on its way at the second throttle is counted when it comes back."""
    timer = RoomTimer(horizon=120.0)
    for i in range(10):
        timer.accepted(i * 0.01)  # opening burst: 10 in 0.1 s
    assert timer.throttled(0.1, outstanding=0) is None  # nothing to time against yet
    for i in range(1, 11):
        timer.accepted(0.1 + i * 0.1)  # 10 a second
    timed = timer.throttled(1.15, outstanding=1)
    assert timed is not None
    assert timed.low == pytest.approx(9 / 1.05)
    assert timed.middle == pytest.approx(10 / 1.05)
    assert timed.high == pytest.approx(12 / 1.05)
    timer.accepted(1.12)  # started before the throttle, answered after it
    assert timer.refined(0.05) == pytest.approx(12 / 1.05)  # 11 passed: not yet within 5%
    assert timer.refined(0.1) == pytest.approx(11 / 1.05)
    assert timer.burst(10.0) == pytest.approx(9.0)  # 10 let through in 0.1 s, at 10 a second


def test_room_timer_distrusts_a_span_where_the_bucket_overflowed() -> None:
    """A long idle stretch lets a small bucket fill and overflow: what passed over the span
    then says nothing about the rate, so no timing is given."""
    timer = RoomTimer(horizon=120.0)
    timer.accepted(0.0)
    timer.accepted(0.1)
    assert timer.throttled(0.1, outstanding=0) is None  # a burst of about one message
    for i in range(20):
        timer.accepted(10.0 + i * 0.01)  # idle for 10 s, then 20 at once
    assert timer.throttled(10.2, outstanding=0) is None
    for i in range(1, 21):
        timer.accepted(10.2 + i * 0.05)  # 20 a second, throttled at both ends: trusted
    timed = timer.throttled(11.2, outstanding=0)
    assert timed is not None and timed.middle == pytest.approx(20.0)


def test_rate_throttle_without_data_starts_slow() -> None:
    """A throttle on the very first message sets a modest pace to grow from."""
    pacer, _ = make()
    pacer.reserve()
    pacer.observe(V.THROTTLE_RATE, open_connections=1, backlog=True)
    assert pacer.rate_per_second == 1.0


def test_never_speeds_up_during_a_run_of_throttles() -> None:
    """Throttles interleaved with a few successes never raise the pace or the connections."""
    pacer, clock = make(learned=Limits(rate_per_minute=600, connections=3))
    connect_all(pacer)
    accept(pacer, clock, 100)
    before = (pacer.rate_per_second or math.inf, pacer.target_connections)
    for _ in range(20):
        pacer.observe(V.THROTTLE_RATE, open_connections=3, backlog=True)
        after = (pacer.rate_per_second or math.inf, pacer.target_connections)
        assert after[0] <= before[0] and after[1] <= before[1]
        accept(pacer, clock, 3)
        assert (pacer.rate_per_second or math.inf, pacer.target_connections) <= after
        before = (pacer.rate_per_second or math.inf, pacer.target_connections)


def test_pace_grows_back_when_quiet() -> None:
    """After a run the pace climbs back to just under the measured limit."""
    pacer, clock = make(learned=Limits(rate_per_minute=600))
    connect_all(pacer)
    limit = 10.0
    for _ in range(5):
        pacer.observe(V.THROTTLE_RATE, open_connections=1, backlog=True)
    low = pacer.rate_per_second
    assert low is not None and low < 0.95 * limit
    accept(pacer, clock, 400, gap=0.0)
    rate = pacer.rate_per_second
    assert rate is not None and rate > low


def test_retry_after_on_a_throttle_pauses_the_route() -> None:
    """A throttle that says "try again in 5 minutes" blocks the whole route for 300 s."""
    pacer, clock = make()
    pacer.observe(V.THROTTLE_RATE, open_connections=1, backlog=True, retry_after=300)
    assert pacer.blocked_for() == 300.0
    clock.now += 300
    assert pacer.blocked_for() == 0.0


@pytest.mark.parametrize(
    "verdict",
    [V.GREYLIST, V.TRANSIENT, V.RECIPIENT_REJECTED, V.MESSAGE_REJECTED, V.AMBIGUOUS],
)
def test_message_level_verdicts_leave_the_route_alone(verdict: Verdict) -> None:
    """Greylisting (even with a hint), transient and rejected verdicts do not change pacing."""
    pacer, _ = make(learned=Limits(connections=2, rate_per_minute=60))
    pacer.on_connected(2)
    before = repr(pacer), pacer.limits
    pacer.observe(verdict, open_connections=2, backlog=True, retry_after=60)
    assert (repr(pacer), pacer.limits) == before
    assert pacer.blocked_for() == 0.0


# ---- per connection -------------------------------------------------------------------------


def test_per_connection_cap_is_learned_and_only_lowered() -> None:
    """The count a connection carried before its 421 becomes the cap; MAILMAX lowers it too."""
    pacer, _ = make()
    pacer.observe(
        V.THROTTLE_PER_CONNECTION, open_connections=2, backlog=True, messages_on_connection=0
    )
    assert pacer.messages_per_connection is None
    pacer.observe(
        V.THROTTLE_PER_CONNECTION, open_connections=2, backlog=True, messages_on_connection=50
    )
    pacer.observe(
        V.THROTTLE_PER_CONNECTION, open_connections=2, backlog=True, messages_on_connection=60
    )
    assert pacer.messages_per_connection == 50
    pacer.observe(
        V.THROTTLE_PER_CONNECTION, open_connections=2, backlog=True, messages_on_connection=40
    )
    assert pacer.messages_per_connection == 40
    pacer.apply_server_limits(mailmax=30)
    pacer.apply_server_limits(mailmax=None)
    assert pacer.messages_per_connection == 30
    assert pacer.limits.messages_per_connection == 40


def test_mailmax_alone_is_reported() -> None:
    """A LIMITS MAILMAX from EHLO is what the report shows when nothing else was learned."""
    pacer, _ = make()
    pacer.apply_server_limits(mailmax=100)
    assert pacer.limits.describe() == "100 messages per connection"


# ---- quota ------------------------------------------------------------------------------------


def test_quota_without_window_probes_after_a_minute_doubling_up_to_an_hour() -> None:
    """A quota verdict, nothing saying how long: learn the count sent, wait a minute, then let
    one message probe; each refused probe doubles the wait, up to an hour."""
    pacer, clock = make(learned=Limits(connections=3))
    connect_all(pacer)
    accept(pacer, clock, 150)
    pacer.observe(V.QUOTA, open_connections=3, backlog=True)
    assert pacer.limits.quota == 150
    assert pacer.blocked_for() == pytest.approx(60.0)
    assert pacer.target_connections == 1  # the probe goes alone
    assert repr(pacer).endswith("blocked>")
    pacer.observe(V.QUOTA, open_connections=3, backlog=True)  # in flight before the pause
    assert pacer.blocked_for() == pytest.approx(60.0)
    waits = []
    for _ in range(8):
        clock.now += pacer.blocked_for()
        assert pacer.blocked_for() == 0.0
        pacer.observe(V.QUOTA, open_connections=1, backlog=True)  # the probe: still over
        waits.append(round(pacer.blocked_for(), 6))
    assert waits == [120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0, 3600.0]
    assert pacer.limits.quota == 150 and pacer.limits.quota_window_seconds is None


def test_quota_probe_that_passes_learns_the_window_and_the_quota() -> None:
    """The probe that gets through bounds the window (from the window's first accepted message
    until then) and the quota is what that window let through, the messages then on their way
    included; the connections come back."""
    pacer, clock = make(learned=Limits(connections=2))
    connect_all(pacer)
    accept(pacer, clock, 40, gap=0.01)  # t = 0.01 .. 0.40
    clock.now = 0.5
    pacer.observe(V.QUOTA, open_connections=2, backlog=True)
    clock.now = 0.51
    pacer.observe(V.ACCEPTED, open_connections=2, backlog=True)  # on its way: it counted
    clock.now = 60.5
    assert pacer.blocked_for() == 0.0
    pacer.reserve()
    clock.now = 60.6
    pacer.observe(V.ACCEPTED, open_connections=1, backlog=True)  # the probe got through
    assert pacer.limits.quota == 41
    assert pacer.limits.quota_window_seconds == pytest.approx(60.59)
    assert pacer.target_connections == 2
    assert pacer.limits.describe() == "2 connections, 41 messages per 60.59 seconds"


def test_learned_quota_window_is_tried_halfway_until_its_bounds_meet() -> None:
    """Learned as more than 0.49 s and at most 60.59 s, the next full window is tried once
    halfway; a refusal raises the lower bound and waits for the upper one, a pass lowers the
    upper bound. Each try costs one message."""
    pacer, clock = make(learned=Limits(connections=2))
    connect_all(pacer)
    accept(pacer, clock, 40, gap=0.01)  # t = 0.01 .. 0.40
    clock.now = 0.5
    pacer.observe(V.QUOTA, open_connections=2, backlog=True)  # the window is > 0.49 s
    clock.now = 60.6
    pacer.reserve()
    pacer.observe(V.ACCEPTED, open_connections=1, backlog=True)  # ... and <= 60.59 s
    accept(pacer, clock, 39, gap=0.01)  # the quota again, 40 with the probe
    assert clock.now + pacer.blocked_for() == pytest.approx(60.6 + (0.49 + 60.59) / 2)
    clock.now = 60.6 + 30.54
    assert pacer.blocked_for() == 0.0 and pacer.target_connections == 1
    pacer.reserve()
    pacer.observe(V.QUOTA, open_connections=1, backlog=True)  # too early: it is > 30.54 s
    assert clock.now + pacer.blocked_for() == pytest.approx(60.6 + 60.59)
    clock.now = 60.6 + 60.59
    pacer.reserve()
    pacer.observe(V.ACCEPTED, open_connections=1, backlog=True)
    accept(pacer, clock, 39, gap=0.01)
    assert clock.now + pacer.blocked_for() == pytest.approx(121.19 + (30.54 + 60.59) / 2)
    clock.now = 121.19 + 45.565
    assert pacer.blocked_for() == 0.0
    pacer.reserve()
    pacer.observe(V.ACCEPTED, open_connections=1, backlog=True)  # passed: it is <= 45.565 s
    assert pacer.limits.quota_window_seconds == pytest.approx(45.565)


def test_messages_on_their_way_count_against_a_known_quota() -> None:
    """With 2 of a quota of 3 sent in the window and one more on its way, the route waits."""
    pacer, clock = make(learned=Limits(quota=3, quota_window_seconds=100, connections=2))
    connect_all(pacer)
    accept(pacer, clock, 2, gap=1.0)  # t = 1, 2
    assert pacer.blocked_for() == 0.0
    pacer.reserve()  # the third is on its way
    assert pacer.blocked_for() == pytest.approx(99.0)  # until the first ages out at t=101


def test_quota_probe_refused_with_a_hint_waits_for_the_hint() -> None:
    """A refused probe whose reply says when to come back waits that long, not twice as long."""
    pacer, clock = make()
    connect_all(pacer)
    accept(pacer, clock, 5)
    pacer.observe(V.QUOTA, open_connections=1, backlog=True)
    clock.now += 60
    pacer.observe(V.QUOTA, open_connections=1, backlog=True, retry_after=45)
    assert pacer.blocked_for() == 45.0
    clock.now += 45
    pacer.observe(V.QUOTA, open_connections=1, backlog=True)
    assert pacer.blocked_for() == 60.0  # the hint was not a probing wait: nothing to double


def test_quota_honours_the_servers_hint() -> None:
    """A quota reply saying when to come back is believed."""
    pacer, _ = make(config=PacerConfig(quota_wait_seconds=10))
    pacer.observe(V.QUOTA, open_connections=1, backlog=True, retry_after=900)
    assert pacer.blocked_for() == 900.0


def test_known_quota_window_blocks_before_the_server_has_to_say_so() -> None:
    """With a learned quota and window, the pacer stops at the quota and resumes as sends age."""
    pacer, clock = make(learned=Limits(quota=10, quota_window_seconds=100))
    connect_all(pacer)
    accept(pacer, clock, 10, gap=1.0)  # sends at t=1..10
    assert pacer.blocked_for() == pytest.approx(91.0)  # the first ages out at t=101
    clock.now = 101.5
    assert pacer.blocked_for() == 0.0


def test_quota_with_configured_window_waits_for_the_oldest_to_age_out() -> None:
    """On a quota verdict with a configured window, the wait ends when the window moves on."""
    pacer, clock = make(ceilings=Limits(quota_window_seconds=100))
    connect_all(pacer)
    accept(pacer, clock, 5, gap=2.0)  # t=2..10
    pacer.observe(V.QUOTA, open_connections=1, backlog=True)
    assert pacer.blocked_for() == pytest.approx(92.0)
    assert pacer.limits.quota == 5


def test_state_words_in_repr() -> None:
    """The repr shows open/target connections, the pace and one state word."""
    pacer, clock = make(learned=Limits(rate_per_minute=120))
    pacer.on_connected(1)
    assert repr(pacer) == "<Pacer connections=1/1 rate=1.9/s steady>"
    pacer.on_closed(0)
    assert repr(pacer) == "<Pacer connections=0/1 rate=1.9/s steady>"
    assert pacer.state == "steady"
    clock.now += 1
    assert "blocked" not in repr(pacer)


def test_connection_beyond_the_limit_counts_as_a_probe() -> None:
    """If the engine opens one more than the learned limit and it works, the limit grows."""
    pacer, clock = make(learned=Limits(connections=2))
    pacer.on_connected(3)
    for _ in range(3):
        clock.now += 0.1
        pacer.observe(V.ACCEPTED, open_connections=3, backlog=True)
    assert pacer.limits.connections == 3


def test_outcomes_without_bookings_are_tolerated() -> None:
    """Outcomes reported without reserve() (or before the booked start) do not break pacing."""
    pacer, _ = make(learned=Limits(rate_per_minute=600))
    for _ in range(5):
        pacer.observe(V.ACCEPTED, open_connections=1, backlog=True)
    waits = [pacer.reserve() for _ in range(3)]
    pacer.observe(V.ACCEPTED, open_connections=1, backlog=True)  # before its slot began
    assert waits[1] > 0
    assert pacer.rate_per_second == pytest.approx(9.5)


def test_rate_growth_stops_at_the_configured_ceiling() -> None:
    """Growing back after a throttle never passes a configured rate ceiling."""
    pacer, clock = make(learned=Limits(rate_per_minute=600), ceilings=Limits(rate_per_minute=612))
    connect_all(pacer)
    accept(pacer, clock, 2000, gap=0.0)
    rate = pacer.rate_per_second
    assert rate is not None and rate <= 10.2
