"""Learned limits as hypotheses (DESIGN §5): the rules that read a limit from the server's
behaviour, whatever its words, and the sentence that tells the user why.

Words suggest; behaviour decides. Each rule here is a pure function over what the pacer saw,
table-tested like the classifier:

* :func:`per_connection_cap` — throttles that land at the same per-connection count on every
  connection are a per-connection cap, whatever their words say;
* :class:`WindowReader` — a "rate" throttle that keeps coming while the pace is well below one
  that passed is not a rate: the server counts per window (Postfix anvil, per-minute counters,
  sliding windows); two windows that let the same count through confirm it.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Lesson", "WindowReader", "WindowReading", "per_connection_cap"]

#: throttles at one count, on distinct connections, before that count is taken for a cap
CAP_CONFIRMATIONS = 2
#: two windows agree when their counts are within this fraction of each other
WINDOW_AGREEMENT = 0.25
#: a window that let fewer than this through is not told from a token bucket's refill
WINDOW_MIN_COUNT = 4


def per_connection_cap(counts: Sequence[int], most_carried: int) -> int | None:
    """The per-connection cap that recent throttles reveal, if any.

    ``counts``: for each recent throttle (newest last), how many messages its connection had
    carried; ``most_carried``: the most messages one connection ever carried. A count ``n`` is a
    cap when the newest throttle and at least one other came after exactly ``n`` messages and no
    connection ever carried more than ``n`` (one that did refutes it).
    """
    if not counts:
        return None
    newest = counts[-1]
    if newest < 1 or most_carried > newest:
        return None
    return newest if counts.count(newest) >= CAP_CONFIRMATIONS else None


@dataclass(frozen=True)
class Lesson:
    """One learned limit with the reply that taught it, in words."""

    limit: str  #: a :class:`~mailpacer.core.limits.Limits` field name, or "refuted"
    sentence: str

    def __str__(self) -> str:
        return self.sentence


def quoted(reply: str | None) -> str:
    """A server reply as a sentence quotes it (shortened), or "a refusal" when unknown."""
    if not reply:
        return "a refusal"
    text = " ".join(reply.split())
    return f'"{text[:100]}…"' if len(text) > 100 else f'"{text}"'


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class WindowReading(NamedTuple):
    """What one window let through, and how long it lasted (between two bounds)."""

    messages: int  #: messages accepted from the window's first message until the server refused
    low: float  #: the window lasts longer than this (seconds, from its first message) ...
    high: float  #: ... and at most this


class WindowReader:
    """Reads a limiter that counts per window from the stretches it refuses everything.

    The pacer calls :meth:`block` when rate throttles keep coming although the pace is well
    below one that passed (the server has no room, and slowing down does not make room: only
    time does). The route then waits, probing with one message after a wait that doubles; each
    refused probe (:meth:`refused`) bounds the window from below, the probe that passes
    (:meth:`accepted`) from above. Two windows in a row that let the same count through
    (:attr:`confirmed`) make it a window, not a rate: a token bucket refills slowly after
    such a stretch, so its second burst is much smaller than its first.
    """

    def __init__(self, *, first_wait: float = 1.0, max_wait: float = 300.0) -> None:
        self._first_wait, self._max_wait = first_wait, max_wait
        self._start: float | None = None  #: the first accepted message since the last reopen
        self._count = 0
        self._last_refused = -math.inf
        self._wait = first_wait
        self.blocked_until = -math.inf
        self.blocking = False  #: a stretch is on: the route waits and probes
        self.readings: collections.deque[WindowReading] = collections.deque(maxlen=2)
        self.times: collections.deque[float] = collections.deque(maxlen=4096)  #: accepts

    def __repr__(self) -> str:
        return f"<WindowReader blocking={self.blocking} readings={list(self.readings)}>"

    @property
    def confirmed(self) -> WindowReading | None:
        """The window two agreeing readings show: the smaller count, the larger bounds."""
        if len(self.readings) < 2:
            return None
        a, b = self.readings
        small, large = sorted((a.messages, b.messages))
        if small < WINDOW_MIN_COUNT or large - small > WINDOW_AGREEMENT * large:
            return None
        return WindowReading(small, max(a.low, b.low), max(a.high, b.high))

    def accepted(self, now: float) -> WindowReading | None:
        """A message was accepted; when it ends a stretch, what the window was."""
        self.times.append(now)
        reading = None
        if self.blocking and self._start is not None:
            reading = WindowReading(
                self._count, max(0.0, self._last_refused - self._start), now - self._start
            )
            self.readings.append(reading)
            self.blocking = False
            self._start, self._count = None, 0
        if self._start is None:
            self._start = now
        self._count += 1
        return reading

    def block(self, now: float) -> None:
        """The server has no room although the pace is well below what passed: wait, probe."""
        self.blocking = True
        self._wait = self._first_wait
        self._last_refused = now
        self.blocked_until = now + self._wait

    def refused(self, now: float) -> None:
        """A probe (or a message booked before the stretch) was refused during the stretch."""
        self._last_refused = max(self._last_refused, now)
        if now >= self.blocked_until:  # a probe, not the answer to one booked earlier
            self._wait = min(self._max_wait, 2 * self._wait)
            self.blocked_until = now + self._wait

    def blocked_for(self, now: float) -> float:
        """Seconds the route still waits for the window to reset (0.0 = probe now)."""
        return max(0.0, self.blocked_until - now) if self.blocking else 0.0
