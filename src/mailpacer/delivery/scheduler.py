"""The engine's decisions, in plain code with an injected clock (STYLE habit 5).

The engine (:mod:`mailpacer.delivery.engine`) only does I/O; what to claim, how many connections
to open, when a route that lets nobody in has failed, when to look at the store again, and which
final state a campaign ends in are decided here, where they are tested without sockets. The
pacer (:mod:`mailpacer.pacing.pacer`) decides how many connections the *server* allows and how
fast; this module turns that and the engine's own counts into actions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from mailpacer.core.states import CampaignState

__all__ = [
    "ConnectGate",
    "Timing",
    "claim_size",
    "connections_to_open",
    "final_state",
    "next_look",
]

C = CampaignState

#: campaign states a run may start from (running/waiting: an earlier run of ours that died)
STARTABLE = frozenset({C.QUEUED, C.PAUSED, C.RUNNING, C.WAITING})
#: states only a person (or another process on their behalf) sets: they win over ours
USER_STOPS = frozenset({C.PAUSED, C.CANCELLED})


@dataclass(frozen=True)
class Timing:
    """How often the engine does its bookkeeping; production defaults, tests shorten them."""

    #: a claimed message's lease, extended every third of it: what a process on another machine
    #: that died holding messages delays them by, at most (on this machine: its pid tells)
    lease_seconds: float = 30.0
    flush_interval: float = 0.05  #: outcomes are written at least this often ...
    flush_size: int = 100  #: ... or when this many are buffered
    progress_interval: float = 0.25
    poll_interval: float = 0.5  #: how often a busy campaign's state is re-read (pause/cancel)
    idle_poll_interval: float = 5.0  #: the same while only deferred messages remain
    idle_close_seconds: float = 5.0  #: a connection with nothing to do is closed after this
    waiting_after: float = 1.0  #: a route block this long shows the campaign as ``waiting``
    max_connect_failures: int = 5  #: failed opens in a row, none open, that fail the route ...
    outage_seconds: float = 300.0  #: ... once they have lasted this long, if the route had worked
    leave_deferred_after: float = math.inf  #: only deferred left, next due later: stop
    connect_backoff: float = 0.2  #: first wait after a failed open, doubling ...
    connect_backoff_max: float = 5.0  #: ... up to this (an outage is tried every 5 s)


def claim_size(*, ready: int, connections: int) -> int:
    """How many messages to claim now: enough for two per connection plus a few, claimed in
    batches (never one at a time), or 0 while enough are ready."""
    want = 2 * max(connections, 1) + 8 - ready
    return want if want >= max(4, connections) else 0


def connections_to_open(*, target: int, running: int, work: int) -> int:
    """New connections to start beside the ``running`` ones (open, opening or idle): up to the
    pacer's target, never more than there is work for (``work``: messages ready plus those
    on their way on connections)."""
    return max(0, min(target, work) - running)


def next_look(*, now: float, next_due: float | None, poll: float) -> float:
    """Seconds to sleep when a campaign has nothing ready: until its next deferred message is
    due, but no longer than ``poll`` (a pause or cancel made elsewhere must be noticed)."""
    if next_due is None:
        return poll
    return min(poll, max(0.0, next_due - now))


def final_state(*, stored: CampaignState, done: bool, cancelled: bool = False) -> CampaignState:
    """The state a run leaves its campaign in. A pause or cancel stored by someone else wins,
    and so does ``done`` (another process sharing the campaign finished it);
    then a cancel of ours; then ``done`` when nothing is left; otherwise ``paused``
    (interrupted, or the route failed: the reason says which)."""
    if stored in USER_STOPS or stored is C.DONE:  # DONE: another process finished it
        return stored
    if cancelled:
        return C.CANCELLED
    return C.DONE if done else C.PAUSED


class ConnectGate:
    """When a route may try to open a connection again, and when it has failed.

    A refusal while other connections are open is the pacer's business (a connection limit);
    failures with nothing open back off exponentially. The route fails after
    ``max_connect_failures`` such failures in a row, or at once on a fatal reply
    (authentication, TLS). Once a connection has worked, the failures must also have lasted
    ``outage_seconds``: a server that goes away (a restart, a network blip) is waited out,
    while a route that never answered (a wrong port) fails in seconds.
    """

    def __init__(
        self, clock: Callable[[], float], timing: Timing, *, name: str = "the route"
    ) -> None:
        self._clock = clock
        self._name = name
        self._timing = timing
        self._failures = 0
        self._first_failure = math.inf
        self._retry_at = -math.inf
        self._worked = False  #: a connection got through at least once
        self.failure: str | None = None  #: why the route failed, once it has

    def __repr__(self) -> str:
        state = "failed" if self.failure else f"failures={self._failures}"
        return f"<ConnectGate {state} wait={self.wait():.2f}s>"

    def wait(self) -> float:
        """Seconds until the next open may be tried (0.0: now)."""
        return max(0.0, self._retry_at - self._clock())

    def fail(self, why: str) -> None:
        """The route has failed for a reason found elsewhere (a reply that refuses our
        credentials mid-session, an internal error); the first reason stands."""
        if self.failure is None:
            self.failure = why

    def opened(self) -> None:
        """A connection got through: the run of failures is over."""
        self._worked = True
        self._failures = 0
        self._first_failure = math.inf
        self._retry_at = -math.inf

    def refused(self, *, why: str, throttled: bool, open_connections: int, fatal: bool) -> None:
        """An open failed. ``throttled``: read as a connection or rate limit."""
        if fatal:
            self.failure = why
            return
        if throttled and open_connections > 0:
            return  # the pacer has lowered its ceiling; the open connections carry on
        now = self._clock()
        t = self._timing
        self._failures += 1
        self._first_failure = min(self._first_failure, now)
        backoff = min(t.connect_backoff_max, t.connect_backoff * 2 ** (self._failures - 1))
        self._retry_at = now + backoff
        lasted = now - self._first_failure
        outage = t.outage_seconds if self._worked else 0.0
        if (
            not throttled
            and open_connections == 0
            and self._failures >= t.max_connect_failures
            and lasted >= outage
        ):
            self.failure = f"cannot connect to {self._name} ({self._failures} tries): {why}"
