"""The engine's pure decisions (delivery/scheduler.py), with an injected clock: no sockets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpacer.core.states import CampaignState
from mailpacer.delivery.scheduler import (
    ConnectGate,
    Timing,
    claim_size,
    connections_to_open,
    final_state,
    next_look,
)

C = CampaignState


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("ready", "connections", "expected"),
    [
        (0, 1, 10),  # two per connection plus a few
        (0, 4, 16),
        (7, 1, 0),  # three missing: not worth a claim of its own
        (6, 1, 4),
        (0, 20, 48),
        (28, 20, 20),
        (40, 20, 0),  # 8 missing is fewer than one per connection
    ],
)
def test_claim_size(ready: int, connections: int, expected: int) -> None:
    """Claims come in batches of at least four (and one per connection), never one at a time."""
    assert claim_size(ready=ready, connections=connections) == expected


@given(st.integers(0, 200), st.integers(1, 100))
def test_claim_size_never_overfills(ready: int, connections: int) -> None:
    """Whatever is ready, a claim never leaves more than two per connection plus eight."""
    size = claim_size(ready=ready, connections=connections)
    assert size >= 0
    assert size == 0 or ready + size == 2 * connections + 8


@pytest.mark.parametrize(
    ("target", "running", "work", "expected"),
    [(2, 0, 100, 2), (2, 1, 100, 1), (2, 2, 100, 0), (4, 0, 1, 1), (4, 3, 2, 0), (3, 0, 0, 0)],
)
def test_connections_to_open(target: int, running: int, work: int, expected: int) -> None:
    """Up to the target, never more connections than there are messages for them."""
    assert connections_to_open(target=target, running=running, work=work) == expected


def test_next_look_waits_for_the_next_due_message_but_not_past_the_poll() -> None:
    """Only deferred messages left: sleep until the first is due, at most ``poll``."""
    assert next_look(now=10.0, next_due=12.5, poll=5.0) == 2.5
    assert next_look(now=10.0, next_due=600.0, poll=5.0) == 5.0
    assert next_look(now=10.0, next_due=9.0, poll=5.0) == 0.0
    assert next_look(now=10.0, next_due=None, poll=5.0) == 5.0
    assert next_look(now=10.0, next_due=None, poll=math.inf) == math.inf


@pytest.mark.parametrize(
    ("stored", "done", "cancelled", "expected"),
    [
        (C.RUNNING, True, False, C.DONE),
        (C.RUNNING, False, False, C.PAUSED),  # interrupted or the route failed
        (C.PAUSED, True, False, C.PAUSED),  # a user's pause made meanwhile wins
        (C.CANCELLED, False, False, C.CANCELLED),
        (C.CANCELLED, True, False, C.CANCELLED),
        (C.WAITING, False, False, C.PAUSED),
        (C.RUNNING, False, True, C.CANCELLED),
    ],
)
def test_final_state(stored: C, done: bool, cancelled: bool, expected: C) -> None:
    """A stored pause or cancel wins, then our own cancel, then done, else paused."""
    assert final_state(stored=stored, done=done, cancelled=cancelled) is expected


def test_gate_backs_off_exponentially_and_fails_after_the_tries() -> None:
    """Failed opens with nothing open wait 0.2, 0.4, 0.8 s ...; the fifth fails the route with
    the last reason; an open in between starts over."""
    clock = Clock()
    gate = ConnectGate(clock, Timing(), name="smtp://mx:25")
    waits = []
    for _ in range(4):
        gate.refused(why="connection refused", throttled=False, open_connections=0, fatal=False)
        waits.append(round(gate.wait(), 3))
        clock.now += gate.wait()
    assert waits == [0.2, 0.4, 0.8, 1.6]
    assert gate.failure is None
    gate.refused(why="connection refused", throttled=False, open_connections=0, fatal=False)
    assert gate.failure == "cannot connect to smtp://mx:25 (5 tries): connection refused"
    assert repr(gate).startswith("<ConnectGate failed")


def test_gate_waits_out_an_outage_before_failing() -> None:
    """Once a connection has worked, five quick failures are not enough: they must also have
    lasted ``outage_seconds`` (a server restart is waited out); an open resets the count."""
    clock = Clock()
    gate = ConnectGate(clock, Timing(outage_seconds=30.0, connect_backoff_max=5.0))
    gate.opened()
    for _ in range(8):
        gate.refused(why="refused", throttled=False, open_connections=0, fatal=False)
        clock.now += gate.wait()
    assert gate.failure is None and clock.now - 100.0 < 30.0
    gate.opened()
    assert gate.wait() == 0.0
    for _ in range(12):
        gate.refused(why="refused", throttled=False, open_connections=0, fatal=False)
        clock.now += gate.wait()
        if gate.failure:
            break
    assert gate.failure is not None and "(" in gate.failure


def test_gate_a_route_that_never_answered_fails_in_seconds() -> None:
    """A wrong port: nothing ever got through, so the outage wait does not apply."""
    clock = Clock()
    gate = ConnectGate(clock, Timing(outage_seconds=300.0))
    for _ in range(5):
        gate.refused(why="connection refused", throttled=False, open_connections=0, fatal=False)
        clock.now += gate.wait()
    assert gate.failure is not None and clock.now - 100.0 < 10.0


def test_gate_a_throttle_with_others_open_is_the_pacers_business() -> None:
    """A refused extra connection while others work neither waits nor counts toward failing;
    a throttle with nothing open waits but never fails the route; a fatal reply fails at once."""
    clock = Clock()
    gate = ConnectGate(clock, Timing(max_connect_failures=1))
    gate.refused(why="421 too many", throttled=True, open_connections=2, fatal=False)
    assert gate.wait() == 0.0 and gate.failure is None
    gate.refused(why="421 too many", throttled=True, open_connections=0, fatal=False)
    assert gate.wait() > 0 and gate.failure is None
    gate.refused(why="535 bad password", throttled=False, open_connections=0, fatal=True)
    assert gate.failure == "535 bad password"
