"""How fast a route may send (DESIGN §5): a paced token bucket that learns the server's rate.

Unknown means unlimited. The first rate throttle sets a pace just under what passed; while
throttles keep coming (a *run*), the pace follows what the server actually lets through, which
it measures once the messages booked before the run have come back. Each throttle is a moment the
server had no room, so what passed between two of them times its rate (:class:`RoomTimer`); that
timing, when it can be trusted, is the measure. After a throttle nothing new is booked until the
server has had room for what is already booked. Between runs the pace climbs back quickly to just
under the measured limit, then carefully to it, holds, and probes past it — a probe counts as held
only once the server's burst would have drained, and the hold grows each time a probe fails.
Nothing here ever speeds up during a run.

Outcomes are paired with bookings in order (the k-th message outcome answers the k-th booking),
so the controller can tell a throttle caused by the current pace from one booked before a cut.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["RateConfig", "RateControl", "RoomTimer", "Timed"]

_EPSILON = 1e-9


@dataclass(frozen=True)
class RateConfig:
    """Tuning knobs; the defaults are what the simulator tests hold the pacer to."""

    backoff: float = 0.95  #: after a throttle: this times the rate that passed
    window_messages: int = 20  #: how many recent accepted messages "the rate that passed" spans
    probe_every: int = 40  #: accepted messages between two careful increases
    probe_step: float = 0.01  #: a careful increase: this fraction of the rate
    #: each probe that holds doubles the next one's step, up to this many times ``probe_step``:
    #: a wrong or outdated limit heals within a few hundred messages
    max_growth: float = 32.0
    min_per_second: float = 1 / 3600
    anchor_seconds: float = 120.0  #: how far back a throttle still times the server's rate


class Timed(NamedTuple):
    """The server's rate (messages per second) as timed between two rate throttles."""

    low: float  #: a lower bound
    middle: float
    high: float  #: an upper bound, unless the server's bucket overflowed in between


class RoomTimer:
    """Times the server's rate between moments it had no room for a message (rate throttles).

    A token bucket with no room at both ends of a span let through what it refilled during the
    span, give or take one message, less what overflowed while it was full. So ``(passed - 1) /
    span`` is a lower bound of its rate, and ``(passed + 1 + in flight) / span`` an upper bound
    as long as nothing overflowed. It overflows only while fuller than its burst; the burst is
    what the start of the campaign let through beyond the rate. A span is used only when, at
    the timed rate, the bucket would never have held more than that.
    """

    def __init__(self, horizon: float) -> None:
        self._horizon = horizon  #: seconds a throttle is remembered
        #: [when, accepted messages that started before] per remembered throttle
        self._anchors: collections.deque[list[float]] = collections.deque(maxlen=32)
        self._starts: collections.deque[float] = collections.deque(maxlen=512)
        self._accepted = 0
        self._first: float | None = None  #: when the first accepted message started
        self._opening: tuple[int, float] | None = None  #: accepted, seconds before 1st throttle
        self._timed: tuple[list[float], list[float]] | None = None  #: ends of the last timing

    def accepted(self, started: float) -> None:
        """Count an accepted message by when it started, which may be before the latest
        throttles (it was on its way while they came back)."""
        self._accepted += 1
        if self._first is None:
            self._first = started
        if self._starts and started < self._starts[-1]:
            started = self._starts[-1]  # (kept in order; latency is an estimate)
        self._starts.append(started)
        for anchor in reversed(self._anchors):
            if anchor[0] <= started:
                break
            anchor[1] += 1

    def throttled(self, now: float, *, outstanding: int) -> Timed | None:
        """A rate throttle at ``now``; the rate timed since an earlier one, if any can."""
        if self._opening is None and self._first is not None:
            self._opening = (self._accepted, max(0.0, now - self._first))
        anchors = self._anchors
        while anchors and now - anchors[0][0] > self._horizon:
            anchors.popleft()
        best: Timed | None = None
        end = [now, float(self._accepted)]
        for anchor in anchors:
            at, before = anchor
            span = now - at
            passed = self._accepted - before
            if span <= _EPSILON or passed < 2:
                continue
            timed = Timed((passed - 1) / span, passed / span, (passed + 1 + outstanding) / span)
            if (best is None or timed.low > best.low) and self._held_within_burst(at, timed):
                best, self._timed = timed, (anchor, end)
        anchors.append(end)
        return best

    def refined(self, precise: float) -> float | None:
        """The last timing once the messages then on their way are counted: its middle when
        within ``precise`` (a fraction), else its upper bound."""
        if self._timed is None:
            return None
        (start, before), (end, before_end) = self._timed
        passed = before_end - before
        return (passed + (0 if passed * precise >= 1 else 1)) / (end - start)

    def burst(self, rate: float) -> float:
        """How many messages the server's bucket holds, were its rate ``rate``: what the start
        of the campaign let through beyond the rate (at least one)."""
        if self._opening is None:
            return 1.0
        opened, seconds = self._opening
        return max(1.0, opened - rate * seconds)

    def _held_within_burst(self, since: float, timed: Timed) -> bool:
        """Whether, at the timed rate, the bucket never held more than its burst since then."""
        if self._opening is None:
            return False
        starts = self._starts
        if len(starts) == starts.maxlen and starts[0] > since:
            return False  # the span is longer than what is remembered
        burst = self.burst(timed.middle)
        inside = [started for started in starts if started > since]
        peak = max((timed.middle * (t - since) - i for i, t in enumerate(inside)), default=0.0)
        return peak <= burst + 1


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
        # a persisted rate starts the pace, not the limit: it grows until this campaign's server
        # throttles (a wrong or outdated one heals; a true one costs a throttle or two)
        self._rate = learned * config.backoff if learned else None
        self._limit: float | None = None  #: the server's rate as measured (or an upper bound)
        self._persisted = learned  #: what an earlier campaign measured, until this one does
        self._next_slot = -math.inf
        self._binding = 0.0  #: how often a booking had to wait, smoothed
        self._accepts: collections.deque[float] = collections.deque(maxlen=256)
        self._since_change = 0
        self._growth = 1.0
        self._held: float | None = None  #: the pace before the last increase (it held)
        #: at the limit, wait this many probe periods before probing past it
        self._hold = 1 if learned else 4
        # bookings and outcomes
        self._booked = 0
        self._answered = 0
        self._booked_at_cut = 0
        self._fresh = 0  #: outcomes of messages booked after the last cut
        self._fresh_accepts = 0
        self._starts: collections.deque[tuple[int, float]] = collections.deque(maxlen=512)
        self._sampled = 0  #: the last booking whose latency was sampled
        self._timer = RoomTimer(config.anchor_seconds)
        self._refine_at: int | None = None  #: once this booking is answered, refine the limit
        self.latency: float | None = None  #: seconds from a slot's start to its 250, smoothed
        # the current run of throttles
        self._run = False
        self._run_boundary = 0
        self._run_first: float | None = None
        self._run_times: list[float] = []
        self._run_refused = self._run_accepted = 0  #: outcomes of messages booked in the run
        self._before_run: tuple[float | None, float | None] = (None, None)  #: pace, limit
        self.needed_connections: int | None = None  #: connections the pace needs, when it binds

    @property
    def per_second(self) -> float | None:
        """The pace :meth:`reserve` keeps; ``None`` when unlimited."""
        known = [r for r in (self._rate, self._ceiling_cfg) if r is not None]
        return min(known) if known else None

    @property
    def learned(self) -> float | None:
        """The server's rate as far as it is known (messages per second), for the store."""
        if self._limit is None and self._persisted is not None:
            return max(self._persisted, self._rate or 0.0)
        return self._limit or self._rate

    @property
    def binding(self) -> bool:
        """True while bookings wait for the pace: the rate, not connections, holds sending back."""
        return self.per_second is not None and self._binding > 0.5

    @property
    def outstanding(self) -> int:
        """Bookings not answered yet: messages on their way (at most one per connection)."""
        return max(0, self._booked - self._answered)

    @property
    def starved(self) -> bool:
        """True when, in a run of throttles, messages booked after the last cut were all refused:
        slowing down made no room, so what limits the route is not this pace."""
        return self._run and self._run_refused >= 2 and not self._run_accepted

    def undo_run(self) -> None:
        """The run's throttles did not come from the pace (the server counts per window): the
        pace and limit go back to what they were before it."""
        self._rate, self._limit = self._before_run
        self._run = False
        self._booked_at_cut = self._booked
        self._next_slot = -math.inf

    def refute(self) -> None:
        """The throttles that taught the pace were not about a rate (a cap per connection, a
        window): forget the pace and the limit; a real rate is learned again."""
        self._rate = self._limit = self._held = self._persisted = None
        self._run = False
        self._growth = 1.0
        self._since_change = 0
        self._booked_at_cut = self._booked
        self.needed_connections = None
        self._next_slot = -math.inf

    def adopt(self, per_second: float) -> bool:
        """Another process learned this rate: when it is stricter than what is known here (or
        nothing is), it becomes the limit and the pace goes just under it. Returns whether it
        was adopted."""
        known = self.learned
        if known is not None and per_second >= known:
            return False
        self._limit = per_second
        self._persisted = None
        self._rate = min(self._rate or math.inf, self._cfg.backoff * per_second)
        self._since_change = 0
        self._growth = 1.0
        return True

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
            self._timer.accepted(now - (self.latency or 0.0))
        if self._run and self._answered > self._run_boundary:
            self._run_accepted += accepted
            self._run_refused += not accepted
        if self._run_first is None and self._answered > self._run_boundary:
            self._run_first = now  # the first answer to a message booked during the run
        if self._answered > self._booked_at_cut:
            self._fresh += 1
            self._fresh_accepts += accepted

    def _start_of(self, booking: int) -> float | None:
        starts = self._starts
        if not starts:
            return None
        position = booking - starts[0][0]
        return starts[position][1] if 0 <= position < len(starts) else None

    def _sample_latency(self, now: float) -> None:
        start = self._start_of(self._answered)
        if start is not None and now >= start and self._answered > self._sampled:
            self._sampled = self._answered
            sample = now - start
            old = self.latency
            self.latency = sample if old is None else 0.8 * old + 0.2 * sample

    def accepted(self, now: float, *, quiet: bool) -> None:
        """A message was accepted; grow the pace when nothing throttled lately."""
        self._accepts.append(now)
        self._since_change += 1
        if self._refine_at is not None and self._answered >= self._refine_at:
            self._refine_at = None  # what was on its way at the timing has been counted
            refined = self._timer.refined(1 - self._cfg.backoff)
            if refined is not None and self._limit is not None:
                self._limit = min(self._limit, refined)
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
            if done < (self._hold * every if self._growth == 1 else self._probe_wait(rate)):
                return
            if self._growth > 1:
                self._hold = 4  # the last probe held: the limit moved, probe again soon
            self._limit = rate
            new = rate * (1 + step * self._growth)
            self._growth = min(self._growth * 2, self._cfg.max_growth)
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

    def _probe_wait(self, rate: float) -> int:
        """Messages before a probe past the limit counts as held: the server's bucket would have
        drained at the probe's excess by then (within the hold, which grows on failed probes)."""
        every, held = self._cfg.probe_every, self._held
        if held is None or rate <= held:
            return every
        drain = (self._timer.burst(held) + 1) * rate / (rate - held)
        return max(every, min(math.ceil(drain), self._hold * every))

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
        """A rate throttle: cut the pace (never raise it), and book nothing new until the server
        has room again for the messages already booked."""
        rate = self.per_second
        estimate = self._timer.throttled(now, outstanding=self.outstanding)
        if not self._run:
            new = self._first_cut(rate, estimate)
        elif rate is None or self._answered <= self._booked_at_cut:  # booked before the last cut
            new = rate if rate is not None else 1.0
            if estimate is not None:  # ... but the server's rate is news
                new = min(new, self._from_estimate(estimate))
        else:
            new = self._cut_in_run(now, rate, estimate)
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
        # the server has no room now: what is already booked takes the room it makes first
        pace = self.per_second
        if pace is not None:
            self._next_slot = max(self._next_slot, now + (self.outstanding + 1) / pace)

    def _from_estimate(self, estimate: Timed) -> float:
        """The pace under a timed rate; its upper bound becomes the limit to climb back to."""
        self._limit = estimate.high
        self._refine_at = self._booked
        return self._cfg.backoff * estimate.middle

    def _first_cut(self, rate: float | None, estimate: Timed | None) -> float:
        self._before_run = (self._rate, self._limit)
        self._run = True
        self._run_boundary = self._booked
        self._run_first = None
        self._run_times = []
        self._run_refused = self._run_accepted = 0
        measured = self._recent()
        limit = self._limit
        if estimate is not None:  # timed since an earlier throttle: the best measure there is
            if limit is not None:
                self._hold = min(self._hold * 2, 32)
            return min(rate or math.inf, self._from_estimate(estimate))
        if rate is None:  # unpaced: bursts, no idea how far over; halve what passed
            return 0.5 * (measured or 2.0)
        if limit is not None:  # throttled near the limit again: hold longer next time
            self._hold = min(self._hold * 2, 32)
        low = min(rate, measured or rate)  # paced, so barely over: just under what passed
        if limit is not None and rate <= limit:  # a limit that held no longer does
            low = min(low, 0.98 * limit)
        elif self._held is not None and rate > self._held > 0.99 * low:  # past the pace before
            low = math.sqrt(self._held * rate)  # the last increase, which held: it is in between
        self._limit = low
        return self._cfg.backoff * low

    def _cut_in_run(self, now: float, rate: float, estimate: Timed | None) -> float:
        if estimate is not None:
            return min(rate, self._from_estimate(estimate))
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
