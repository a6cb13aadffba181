"""How fast a route may send (DESIGN §5): a paced token bucket that learns the server's rate.

Unknown means unlimited. The first rate throttle sets a pace just under what passed; while
throttles keep coming (a *run*), the pace follows what the server actually lets through, which
it measures once the messages booked before the run have come back. Between runs the pace climbs
back quickly to just under the measured limit, then carefully to it, holds, and probes past it —
holding longer each time a probe fails. Nothing here ever speeds up during a run.

Outcomes are paired with bookings in order (the k-th message outcome answers the k-th booking),
so the controller can tell a throttle caused by the current pace from one booked before a cut.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

__all__ = ["RateConfig", "RateControl"]

_EPSILON = 1e-9


@dataclass(frozen=True)
class RateConfig:
    """Tuning knobs; the defaults are what the simulator tests hold the pacer to."""

    backoff: float = 0.95  #: after a throttle: this times the rate that passed
    window_messages: int = 20  #: how many recent accepted messages "the rate that passed" spans
    probe_every: int = 40  #: accepted messages between two careful increases
    probe_step: float = 0.01  #: a careful increase: this fraction of the rate
    min_per_second: float = 1 / 3600


class RateControl:
    """The pace for one route. ``quiet`` arguments say that no throttle of any kind is recent."""

    def __init__(
        self,
        config: RateConfig,
        *,
        learned: float | None = None,
        ceiling: float | None = None,
    ) -> None:
        self._cfg = config
        self._ceiling_cfg = ceiling  #: a configured hard ceiling (messages per second)
        self._rate = learned * config.backoff if learned else None
        self._limit = learned  #: the server's rate as measured (or an upper bound of it)
        self._next_slot = -math.inf
        self._binding = 0.0  #: how often a booking had to wait, smoothed
        self._accepts: collections.deque[float] = collections.deque(maxlen=256)
        self._since_change = 0
        self._growth = 1.0
        self._held: float | None = None  #: the pace before the last increase (it held)
        self._hold = 4  #: at the limit, wait this many probe periods before probing past it
        # bookings and outcomes
        self._booked = 0
        self._answered = 0
        self._booked_at_cut = 0
        self._fresh = 0  #: outcomes of messages booked after the last cut
        self._fresh_accepts = 0
        self._starts: collections.deque[tuple[int, float]] = collections.deque(maxlen=64)
        self.latency: float | None = None  #: seconds from a slot's start to its 250, smoothed
        # the current run of throttles
        self._run = False
        self._run_boundary = 0
        self._run_first: float | None = None
        self._run_times: list[float] = []
        self.needed_connections: int | None = None  #: connections the pace needs, when it binds

    @property
    def per_second(self) -> float | None:
        """The pace :meth:`reserve` keeps; ``None`` when unlimited."""
        known = [r for r in (self._rate, self._ceiling_cfg) if r is not None]
        return min(known) if known else None

    @property
    def learned(self) -> float | None:
        """The server's rate as far as it is known (messages per second), for the store."""
        return self._limit or self._rate

    @property
    def binding(self) -> bool:
        """True while bookings wait for the pace: the rate, not connections, holds sending back."""
        return self.per_second is not None and self._binding > 0.5

    @property
    def probing(self) -> bool:
        """True while the pace is above the measured limit."""
        return self._rate is not None and self._limit is not None and self._rate > self._limit

    def reserve(self, now: float) -> float:
        """Book the next slot; seconds to wait before starting it."""
        self._booked += 1
        rate = self.per_second
        start = now if rate is None else max(now, self._next_slot)
        if rate is None:
            self._binding *= 0.9
        else:
            self._next_slot = start + 1.0 / rate
            self._binding = 0.9 * self._binding + (0.1 if start - now > _EPSILON else 0.0)
        self._starts.append((self._booked, start))
        return start - now

    def outcome(self, now: float, accepted: bool, open_connections: int) -> None:
        """Pair a message's outcome with its booking (any message verdict, before the others)."""
        # each connection holds at most one booking, so at most that many are unanswered
        self._answered = min(max(self._answered + 1, self._booked - open_connections), self._booked)
        if accepted:
            self._sample_latency(now)
        if self._run_first is None and self._answered > self._run_boundary:
            self._run_first = now  # the first answer to a message booked during the run
        if self._answered > self._booked_at_cut:
            self._fresh += 1
            self._fresh_accepts += accepted

    def _sample_latency(self, now: float) -> None:
        starts = self._starts
        while starts and starts[0][0] < self._answered:
            starts.popleft()
        if starts and starts[0][0] == self._answered:
            sample = now - starts.popleft()[1]
            if sample >= 0:
                old = self.latency
                self.latency = sample if old is None else 0.8 * old + 0.2 * sample

    def accepted(self, now: float, *, quiet: bool) -> None:
        """A message was accepted; grow the pace when nothing throttled lately."""
        self._accepts.append(now)
        self._since_change += 1
        if self._run and self._answered > self._run_boundary:
            self._run_times.append(now)
        if not quiet:
            return  # never speed up during a run of throttles
        self._run = False
        self._grow()
        rate, latency, current = self._rate, self.latency, self.needed_connections
        if rate is not None and latency is not None and self.binding:
            needed = math.ceil(rate * latency * 1.2) + 1
            if current is None or needed > current or needed < current - 1:
                self.needed_connections = needed  # (no churn for a change of one)
        else:
            self.needed_connections = None

    def _grow(self) -> None:
        rate = self._rate
        if rate is None or not self.binding:
            return  # no pace set, or nobody waits for a slot: a faster pace would not be used
        every, step, backoff = self._cfg.probe_every, self._cfg.probe_step, self._cfg.backoff
        done, limit = self._since_change, self._limit
        if limit is None:  # nothing measured yet: grow quickly until something throttles
            if done < every // 2:
                return
            new = rate * 1.25
        elif rate >= limit:  # at the limit: hold a while, then probe past it, bolder each time
            if done < (self._hold * every if self._growth == 1 else every):
                return
            if self._growth > 1:
                self._hold = 4  # the last probe held: the limit moved, probe again soon
            self._limit = rate
            new = rate * (1 + step * self._growth)
            self._growth = min(self._growth * 2, 4.0)
        elif rate < backoff * limit * (1 - step):  # well below the limit: recover quickly
            if done < every // 4:
                return
            new = min(backoff * limit, rate * 1.25)
        else:  # close to the limit: carefully
            if done < every:
                return
            new = min(limit, rate * (1 + step))
        if self._ceiling_cfg is not None:
            new = min(new, max(rate, self._ceiling_cfg))
        self._held = rate
        self._rate = new
        self._since_change = 0

    def _recent(self) -> float | None:
        recent = list(self._accepts)[-self._cfg.window_messages :]
        if len(recent) < 3 or recent[-1] - recent[0] <= _EPSILON:
            return None
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def _passed_in_run(self) -> float | None:
        """Accepted rate during this run, counting only messages booked during it: the server's
        own limit, since it refuses the rest."""
        times = self._run_times
        if len(times) < 5 or times[-1] - times[0] <= _EPSILON:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def throttled(self, now: float) -> None:
        """A rate throttle: cut the pace (never raise it)."""
        rate = self.per_second
        if not self._run:
            new = self._first_cut(rate)
        elif rate is None or self._answered <= self._booked_at_cut:
            new = rate if rate is not None else 1.0  # booked before the last cut: no news
        else:
            new = self._cut_in_run(now, rate)
        if rate is None or new < rate:
            self._booked_at_cut = self._booked
            self._fresh = self._fresh_accepts = 0
            if self.latency is not None:  # fewer connections, fewer slots booked at the old pace
                needed = max(1, math.ceil(new * self.latency))
                self.needed_connections = min(self.needed_connections or needed, needed)
        self._rate = max(min(new, rate or new), self._cfg.min_per_second)
        self._since_change = 0
        self._growth = 1.0
        self._held = None

    def _first_cut(self, rate: float | None) -> float:
        self._run = True
        self._run_boundary = self._booked
        self._run_first = None
        self._run_times = []
        measured = self._recent()
        limit = self._limit
        if rate is None:  # unpaced: bursts, no idea how far over; halve what passed
            return 0.5 * (measured or 2.0)
        if limit is not None:  # throttled near the limit again: hold longer next time
            self._hold = min(self._hold * 2, 32)
        low = min(rate, measured or rate)  # paced, so barely over: just under what passed
        if limit is not None and rate <= limit:  # a limit that held no longer does
            low = min(low, 0.98 * limit)
        elif self._held is not None and self._held > low:  # past the pace before the last
            low = math.sqrt(self._held * rate)  # increase, which held: the limit is in between
        self._limit = low
        return self._cfg.backoff * low

    def _cut_in_run(self, now: float, rate: float) -> float:
        passed = self._passed_in_run()
        if passed is not None:  # (a throttle below it is the bucket's debt from before: keep)
            self._limit = passed
            return self._cfg.backoff * passed
        # too little passed to time it: cut by the share that passed, and below what could have
        # passed since the first answer to a message booked in the run (the bucket was empty)
        elapsed = now - (self._run_first or now)
        bound = (len(self._run_times) + 1) / elapsed if elapsed > _EPSILON else math.inf
        new = min(rate, self._cfg.backoff * bound)
        if self._fresh >= 4:
            new = min(new, rate * max(0.25, self._fresh_accepts / self._fresh))
        elif self._fresh >= 2 and not self._fresh_accepts:
            new = min(new, 0.5 * rate)
        if new < rate:
            self._limit = min(self._limit or rate, rate)
        return new
