"""The sandbox's limits as plain objects, with explicit times (no sockets, no sleeping)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailpacer.sandbox.limits import ConnectionSlots, Greylist, Quota, RateLimiter


def test_slots_per_ip_and_peak() -> None:
    """Each IP has its own limit; the peak counts all IPs; release frees a slot."""
    slots = ConnectionSlots(2)
    assert slots.acquire("a") and slots.acquire("a")
    assert not slots.acquire("a")
    assert slots.acquire("b")
    assert (slots.open, slots.peak) == (3, 3)
    slots.release("a")
    assert slots.acquire("a")
    assert repr(slots) == "<ConnectionSlots open=3 peak=3 limit=2>"


def test_unlimited_slots_still_count() -> None:
    """Without a limit every connection is admitted and counted."""
    slots = ConnectionSlots(None)
    assert all(slots.acquire("a") for _ in range(100))
    assert slots.peak == 100


def test_rate_limiter_burst_then_refill() -> None:
    """60/minute with a burst of 3: three at once, then one per second, per IP."""
    rate = RateLimiter(60.0, 3)
    assert [rate.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert rate.allow("b", 0.0)
    assert not rate.allow("a", 0.5)
    assert rate.allow("a", 1.01)
    assert not rate.allow("a", 1.02)


@given(st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=200))
def test_rate_limiter_never_exceeds_burst_plus_rate(gaps: list[float]) -> None:
    """Whatever the arrival pattern, allowed <= burst + rate * elapsed."""
    rate = RateLimiter(120.0, 5)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += rate.allow("ip", now)
    assert allowed <= 5 + 2.0 * now + 1e-9


def test_greylist_until_the_delay_then_remembered() -> None:
    """First try waits the full delay; retries see the remaining time; then it passes for good."""
    grey = Greylist(10.0)
    assert grey.wait("ip", "w@x", 0.0) == 10
    assert grey.wait("ip", "W@X", 3.2) == 7  # same recipient, case-insensitive
    assert grey.wait("ip2", "w@x", 3.2) == 10  # another client starts its own wait
    assert grey.wait("ip", "w@x", 10.0) is None
    assert grey.wait("ip", "w@x", 10.1) is None


def test_quota_window_resets() -> None:
    """Q messages per window starting at the first one; the count resets when it passes."""
    quota = Quota(2, 100.0)
    assert not quota.exhausted(0.0)
    quota.count(5.0)
    quota.count(6.0)
    assert quota.exhausted(104.9)
    assert not quota.exhausted(105.0)
    assert quota.used == 0


def test_fixed_window_starts_at_the_first_message_like_anvil() -> None:
    """A fixed window lets its whole count through at once, then refuses until it ends; the
    next window starts at the next message, not on a clock boundary."""
    from mailpacer.sandbox.limits import WindowCounter

    window = WindowCounter(3, 10.0, "fixed")
    assert [window.take(t) for t in (0.0, 0.1, 0.2, 0.3, 9.9)] == [True, True, True, False, False]
    assert [window.take(t) for t in (10.0, 10.1, 10.2, 10.3)] == [True, True, True, False]


def test_sliding_window_frees_each_slot_as_it_ages_out() -> None:
    """A sliding window admits one more message as each counted one leaves the window."""
    from mailpacer.sandbox.limits import WindowCounter

    window = WindowCounter(2, 10.0, "sliding")
    assert [window.take(t) for t in (0.0, 5.0, 9.0, 10.1, 10.2, 15.1)] == [
        True,
        True,
        False,
        True,
        False,
        True,
    ]
