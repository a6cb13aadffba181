"""The rules that read a limit from what the server does (pacing/evidence.py, session_cap.py)."""

from __future__ import annotations

import pytest

from mailpacer.pacing.evidence import WindowReader, ordinal, per_connection_cap, quoted
from mailpacer.pacing.session_cap import SessionCap


@pytest.mark.parametrize(
    ("counts", "most_carried", "cap"),
    [
        ([30, 30], 30, 30),  # two connections refused at their 31st message: a cap of 30
        ([30], 30, None),  # one is not yet a pattern
        ([12, 30, 30], 30, 30),  # the newest two agree
        ([30, 30], 31, None),  # a connection carried 31: no cap at 30
        ([7, 19], 19, None),  # throttles at varying counts: a rate
        ([0, 0], 0, None),  # refused before anything passed: not about the connection
        ([], 0, None),
    ],
)
def test_per_connection_cap_table(counts: list[int], most_carried: int, cap: int | None) -> None:
    """The same count on several connections, never exceeded, is a cap; anything else is not."""
    assert per_connection_cap(counts, most_carried) == cap


def test_a_rate_worded_refusal_that_keeps_the_connection_is_no_cap() -> None:
    """Connections in lockstep reach one count together under a rate limit (450, connection
    kept): without the server ending the connection, no cap is read."""
    cap = SessionCap(None)
    assert cap.throttled(25, told=False, closing=False) is None
    assert cap.throttled(25, told=False, closing=False) is None
    assert cap.cap is None


def test_a_learned_cap_is_probed_and_refuted() -> None:
    """After a clean stretch the cap is lifted to test it; a connection that carries more
    refutes it, and says so."""
    cap = SessionCap(5, probe_after=10)
    assert cap.applied == 5
    for i in range(5):  # a persisted cap is probed after half the stretch
        cap.accepted(i % 5)
    assert cap.probing and cap.applied is None
    said = cap.accepted(5)  # the 6th message on one connection passed
    assert said == "a connection carried 6 messages → no cap of 5 per connection"
    assert cap.cap is None


def test_a_probed_cap_that_holds_waits_twice_as_long() -> None:
    """A refusal at the cap again confirms it; the next probe comes after twice the stretch."""
    cap = SessionCap(None, probe_after=10)
    assert cap.throttled(20, told=True) == 20
    for i in range(10):
        cap.accepted(i)
    assert cap.probing
    assert cap.throttled(20, told=True) == 20
    assert not cap.probing
    for i in range(19):
        cap.accepted(i % 20)
    assert not cap.probing
    cap.accepted(0)
    assert cap.probing


def test_window_reader_confirms_two_agreeing_windows() -> None:
    """A stretch refused at any pace, then the same count again: a window, with its bounds."""
    reader = WindowReader(first_wait=1.0)
    for t in range(50):
        reader.accepted(t * 0.01)
    reader.block(0.6)
    assert reader.blocked_for(0.6) == 1.0
    reader.refused(1.6)  # the probe: refused, wait 2 s
    assert reader.blocked_for(1.6) == 2.0
    reader.refused(3.6)
    reader.refused(7.6)
    first = reader.accepted(15.6)
    assert first is not None and first.messages == 50
    assert (first.low, first.high) == pytest.approx((7.6, 15.6))
    assert reader.confirmed is None
    for t in range(49):
        reader.accepted(15.7 + t * 0.01)
    reader.block(16.5)
    reader.refused(17.5)
    second = reader.accepted(26.0)
    assert second is not None and second.messages == 50
    confirmed = reader.confirmed
    assert confirmed is not None and confirmed.messages == 50


def test_window_reader_tells_a_bucket_from_a_window() -> None:
    """A token bucket lets its burst through once; after the stretch it refills slowly, so
    the second "window" is far smaller than the first: not a window."""
    reader = WindowReader()
    for t in range(20):
        reader.accepted(t * 0.01)
    reader.block(0.3)
    reader.accepted(1.3)
    reader.accepted(1.4)
    reader.block(1.5)
    reader.accepted(2.5)
    assert reader.confirmed is None


@pytest.mark.parametrize(
    ("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (21, "21st")]
)
def test_ordinal(n: int, text: str) -> None:
    """Ordinals read as English."""
    assert ordinal(n) == text


def test_quoted_shortens_long_replies() -> None:
    """Replies are quoted on one line, cut at 100 characters; no reply is "a refusal"."""
    assert quoted("421  too\r\nmany") == '"421 too many"'
    assert quoted(None) == "a refusal"
    assert quoted("x" * 150).endswith('…"')
