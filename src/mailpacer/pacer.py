"""The per-route controller (DESIGN §5): how many connections, how fast, how many per connection.

Pure logic with an injected clock: the engine asks (:attr:`Pacer.target_connections`,
:meth:`Pacer.reserve`, :meth:`Pacer.blocked_for`) and reports (:meth:`Pacer.observe`); the pacer
never sleeps and never does I/O. Without being told anything it starts with one connection and no
rate limit, grows while every slot is busy and nothing throttles, and turns each throttle into a
learned limit that it only probes past after a quiet stretch.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from mailpacer.classify import Verdict
from mailpacer.errors import ConfigError

__all__ = ["Limits", "Pacer", "PacerConfig"]

_EPSILON = 1e-9
_MESSAGE_VERDICTS = frozenset(
    {
        Verdict.ACCEPTED,
        Verdict.THROTTLE_RATE,
        Verdict.THROTTLE_PER_CONNECTION,
        Verdict.QUOTA,
        Verdict.GREYLIST,
        Verdict.RECIPIENT_REJECTED,
        Verdict.MESSAGE_REJECTED,
        Verdict.AMBIGUOUS,
    }
)


@dataclass(frozen=True)
class Limits:
    """A route's limits: learned from the server (persisted) or configured (hard ceilings)."""

    connections: int | None = None
    rate_per_minute: float | None = None
    messages_per_connection: int | None = None
    quota: int | None = None  #: messages per quota window
    quota_window_seconds: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"limit {f.name} must be a number, not {value!r}", key=f.name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"limit {f.name} must be positive, not {value!r}", key=f.name)

    def to_dict(self) -> dict[str, Any]:
        """Every field, ``None`` for unknown: the JSON the store keeps."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        """Read :meth:`to_dict` output; unknown keys (from a newer version) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def describe(self) -> str:
        """ "2 connections, about 120 messages a minute, 100 messages per connection"."""
        parts = []
        if self.connections is not None:
            parts.append(f"{self.connections} connection{'s' if self.connections != 1 else ''}")
        if self.rate_per_minute is not None:
            parts.append(_describe_rate(self.rate_per_minute))
        if self.messages_per_connection is not None:
            parts.append(f"{self.messages_per_connection} messages per connection")
        if self.quota is not None:
            window = self.quota_window_seconds
            span = f"per {_describe_seconds(window)}" if window else "per quota window"
            parts.append(f"{self.quota} messages {span}")
        return ", ".join(parts) if parts else "no limits learned yet"


def _describe_rate(per_minute: float) -> str:
    if per_minute >= 10:
        return f"about {round(per_minute)} messages a minute"
    if per_minute >= 1:
        return f"about {per_minute:.1f} messages a minute"
    return f"about {per_minute * 60:.1f} messages an hour"


def _describe_seconds(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"


@dataclass(frozen=True)
class PacerConfig:
    """Tuning knobs; the defaults are what the simulator tests hold the pacer to."""

    connection_quiet_seconds: float = 60.0  #: after a connection throttle, wait before probing
    connection_quiet_max_seconds: float = 3600.0  #: the wait doubles after each failed probe
    connection_quiet_min_seconds: float = 10.0  #: and halves after each successful one
    connect_backoff_seconds: float = (
        5.0  #: route waits this long when even one connection is refused
    )
    connect_backoff_max_seconds: float = 300.0
    rate_backoff: float = 0.95  #: after a rate throttle: this times the accepted rate measured
    rate_window_messages: int = 20  #: how many recent accepted messages "the accepted rate" spans
    rate_probe_every: int = 40  #: accepted messages between two rate increases
    rate_probe_step: float = 0.01  #: a careful increase: this fraction of the rate
    quiet_messages: int = 10  #: accepted messages without a throttle that end a run of throttles
    quota_wait_seconds: float = 3600.0  #: wait after a quota verdict when nothing says how long
    quota_wait_max_seconds: float = 86400.0
    max_hint_seconds: float = 86400.0  #: longer server hints are cut to this
    min_rate_per_second: float = 1 / 3600


class Pacer:
    """Per-route pacing state. Not thread-safe: one engine (one event loop) owns it."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        learned: Limits | None = None,
        ceilings: Limits | None = None,
        config: PacerConfig | None = None,
    ) -> None:
        self._clock = clock
        self._cfg = config or PacerConfig()
        self._ceil = ceilings or Limits()
        learned = learned or Limits()
        now = clock()
        self._open = 0
        # connections
        self._conn_limit = learned.connections
        self._target = learned.connections or 1
        self._conn_throttled_at = now if learned.connections else -math.inf
        self._conn_quiet = self._cfg.connection_quiet_seconds
        self._probe_base: int | None = None
        self._conn_successes = 0
        self._connect_backoff = self._cfg.connect_backoff_seconds
        # rate (messages per second; None = no limit known)
        learned_rate = learned.rate_per_minute / 60 if learned.rate_per_minute else None
        self._rate = learned_rate * self._cfg.rate_backoff if learned_rate else None
        self._rate_ceiling = learned_rate
        self._next_slot = -math.inf
        self._binding = 0.0
        self._accepts: collections.deque[float] = collections.deque(maxlen=256)
        self._since_throttle = 1 << 30
        self._since_rate_change = 0
        self._growth = 1.0
        self._run_start: float | None = None
        self._run_times: list[float] = []
        self._run_boundary = 0
        self._run_first: float | None = None
        self._reserved = 0  #: reserve() calls so far
        self._outcomes = 0  #: message outcomes so far; the k-th answers the k-th reservation
        self._reserved_at_cut = 0
        self._fresh_accepts = 0  #: outcomes of messages booked after the last cut
        self._fresh_outcomes = 0
        self._starts: collections.deque[tuple[int, float]] = collections.deque(maxlen=64)
        self._latency: float | None = None  #: seconds from a slot's start to its 250, smoothed
        self._rate_conns: int | None = None  #: connections the current pace needs
        self._held_rate: float | None = None  #: the pace before the last increase
        self._hold = 4  #: at the limit, wait this many probe periods before probing past it
        # per connection and quota
        self._per_connection = learned.messages_per_connection
        self._mailmax: int | None = None
        self._quota = learned.quota
        self._quota_window = learned.quota_window_seconds
        self._window_sends: collections.deque[float] = collections.deque()
        self._sent_since_quota = 0
        self._quota_wait = self._cfg.quota_wait_seconds
        self._blocked_until = -math.inf

    # ---- what the engine asks ----------------------------------------------------------------

    @property
    def target_connections(self) -> int:
        """How many connections the engine should keep open now, while it has work."""
        target = self._target
        if self._ceil.connections is not None:
            target = min(target, self._ceil.connections)
        if self._rate_conns is not None:  # the rate binds: idle connections only add risk
            target = min(target, self._rate_conns)
        return max(1, target)

    @property
    def messages_per_connection(self) -> int | None:
        """Close a connection after this many messages (learned cap, LIMITS MAILMAX, ceiling)."""
        caps = [self._per_connection, self._mailmax, self._ceil.messages_per_connection]
        known = [c for c in caps if c is not None]
        return min(known) if known else None

    @property
    def rate_per_second(self) -> float | None:
        """The pace :meth:`reserve` keeps, ``None`` when unlimited."""
        rates = [self._rate]
        if self._ceil.rate_per_minute is not None:
            rates.append(self._ceil.rate_per_minute / 60)
        known = [r for r in rates if r is not None]
        return min(known) if known else None

    def reserve(self) -> float:
        """Book the next send slot; returns seconds to wait before starting it (0.0 = now)."""
        self._reserved += 1
        now = self._clock()
        rate = self.rate_per_second
        if rate is None:
            self._binding *= 0.9
            self._starts.append((self._reserved, now))
            return 0.0
        start = max(now, self._next_slot)
        self._next_slot = start + 1.0 / rate
        wait = start - now
        self._binding = 0.9 * self._binding + (0.1 if wait > _EPSILON else 0.0)
        self._starts.append((self._reserved, start))
        return wait

    def blocked_for(self) -> float:
        """Seconds the whole route must wait (quota window, a server's hint); 0.0 otherwise."""
        now = self._clock()
        blocked = max(0.0, self._blocked_until - now)
        quota, window = self._quota_limits()
        if quota is not None and window is not None:
            self._trim_window(now, window)
            if len(self._window_sends) >= quota:
                blocked = max(blocked, self._window_sends[-quota] + window - now)
        return blocked

    @property
    def limits(self) -> Limits:
        """What this route was found to allow, for the store and the report."""
        rate = self._rate_ceiling or self._rate
        return Limits(
            connections=self._conn_limit,
            rate_per_minute=round(rate * 60, 2) if rate else None,
            messages_per_connection=self._per_connection or self._mailmax,
            quota=self._quota,
            quota_window_seconds=self._quota_window,
        )

    @property
    def state(self) -> str:
        """One word for humans: blocked, throttled, probing, steady or ramping."""
        if self.blocked_for() > 0:
            return "blocked"
        if self._since_throttle < self._quiet_messages():
            return "throttled"
        over_conn = self._conn_limit is not None and self._target > self._conn_limit
        rate = self._rate
        over_rate = (
            rate is not None and self._rate_ceiling is not None and rate > self._rate_ceiling
        )
        if over_conn or over_rate:
            return "probing"
        if self._conn_limit is not None or rate is not None:
            return "steady"
        return "ramping"

    def __repr__(self) -> str:
        rate = self.rate_per_second
        shown = f"{rate:.1f}/s" if rate is not None else "unlimited"
        return (
            f"<Pacer connections={self._open}/{self.target_connections} rate={shown} {self.state}>"
        )

    # ---- what the engine reports ---------------------------------------------------------------

    def on_connected(self, open_connections: int) -> None:
        """A connection passed greeting and EHLO (and AUTH); ``open_connections`` includes it."""
        self._open = open_connections
        self._connect_backoff = self._cfg.connect_backoff_seconds
        limit = self._conn_limit
        if limit is not None and open_connections > limit and self._probe_base is None:
            self._probe_base = limit
            self._conn_successes = 0

    def on_closed(self, open_connections: int) -> None:
        """A connection closed; ``open_connections`` no longer counts it."""
        self._open = open_connections

    def apply_server_limits(self, *, mailmax: int | None = None) -> None:
        """Limits the server advertised in EHLO (RFC 9422 ``LIMITS``)."""
        if mailmax is not None and mailmax > 0:
            self._mailmax = mailmax

    def observe(
        self,
        verdict: Verdict,
        *,
        open_connections: int,
        backlog: bool,
        messages_on_connection: int = 0,
        retry_after: float | None = None,
    ) -> None:
        """Learn from one outcome (a message's, or a connection's: a 421 greeting, a refusal)."""
        now = self._clock()
        self._open = open_connections
        if verdict in _MESSAGE_VERDICTS:  # outcomes come back roughly in booking order
            outcome = max(self._outcomes + 1, self._reserved - open_connections)
            self._outcomes = min(outcome, self._reserved)
            if verdict is Verdict.ACCEPTED:
                self._sample_latency(now)
            if self._run_first is None and self._outcomes > self._run_boundary:
                self._run_first = now  # the first answer to a message booked in this run
            if self._outcomes > self._reserved_at_cut:
                self._fresh_outcomes += 1
                self._fresh_accepts += verdict is Verdict.ACCEPTED
        hint = None
        if retry_after is not None and retry_after > 0 and math.isfinite(retry_after):
            hint = min(retry_after, self._cfg.max_hint_seconds)
        if verdict is Verdict.ACCEPTED:
            self._accepted(now, open_connections, backlog)
        elif verdict is Verdict.THROTTLE_CONNECTIONS:
            self._connections_throttled(now, open_connections)
        elif verdict is Verdict.THROTTLE_RATE:
            self._rate_throttled(now)
        elif verdict is Verdict.THROTTLE_PER_CONNECTION:
            if messages_on_connection >= 1:
                current = self._per_connection
                self._per_connection = min(
                    current or messages_on_connection, messages_on_connection
                )
            hint = None  # a reconnect is the cure, not a pause
        elif verdict is Verdict.QUOTA:
            self._quota_reached(now, hint)
            hint = None
        else:
            hint = None  # greylist hints are the message's business, not the route's
        if hint is not None:
            self._blocked_until = max(self._blocked_until, now + hint)

    # ---- learning ------------------------------------------------------------------------------

    def _sample_latency(self, now: float) -> None:
        starts = self._starts
        while starts and starts[0][0] < self._outcomes:
            starts.popleft()
        if starts and starts[0][0] == self._outcomes:
            sample = now - starts.popleft()[1]
            if sample >= 0:
                old = self._latency
                self._latency = sample if old is None else 0.8 * old + 0.2 * sample

    def _quiet_messages(self) -> int:
        return max(self._cfg.quiet_messages, 2 * self._open)

    def _accepted(self, now: float, open_connections: int, backlog: bool) -> None:
        self._accepts.append(now)
        self._connect_backoff = self._cfg.connect_backoff_seconds
        self._sent_since_quota += 1
        self._quota_wait = self._cfg.quota_wait_seconds
        if self._quota_limits()[1] is not None:
            self._window_sends.append(now)
        self._since_throttle += 1
        self._since_rate_change += 1
        self._conn_successes += 1
        if self._run_start is not None and self._outcomes > self._run_boundary:
            self._run_times.append(now)
            if self._since_throttle >= self._quiet_messages():
                self._run_start = None
        if self._since_throttle < self._quiet_messages():
            return  # never speed up during a run of throttles
        self._grow_connections(now, open_connections, backlog)
        self._grow_rate()
        rate, latency = self._rate, self._latency
        if rate is not None and latency is not None and self._rate_binding():
            self._rate_conns = math.ceil(rate * latency * 1.2) + 1
        else:
            self._rate_conns = None

    def _grow_connections(self, now: float, open_connections: int, backlog: bool) -> None:
        base = self._probe_base
        if (
            base is not None
            and open_connections > base
            and self._conn_successes >= open_connections
        ):
            self._conn_limit = open_connections  # the probe held: the server allows more
            self._probe_base = None
            self._conn_quiet = max(self._cfg.connection_quiet_min_seconds, self._conn_quiet / 2)
        if not backlog or open_connections < self._target or self._conn_successes < self._target:
            return
        if self._rate_binding():
            return  # the rate, not the connection count, is what holds us back
        ceiling = self._ceil.connections
        if ceiling is not None and self._target >= ceiling:
            return
        limit = self._conn_limit
        if limit is None or self._target < limit:
            self._target += 1
            self._conn_successes = 0
        elif now - self._conn_throttled_at >= self._conn_quiet:
            self._target = limit + 1  # probe one above the learned limit
            self._probe_base = limit
            self._conn_successes = 0

    def _rate_binding(self) -> bool:
        return self.rate_per_second is not None and self._binding > 0.5

    def _grow_rate(self) -> None:
        rate = self._rate
        if rate is None or not self._rate_binding():
            return  # no pace set, or nobody waits for a slot: a faster pace would not be used
        every = self._cfg.rate_probe_every
        step = self._cfg.rate_probe_step
        backoff = self._cfg.rate_backoff
        done = self._since_rate_change
        ceiling = self._rate_ceiling
        if ceiling is None:  # nothing measured yet: grow quickly until something throttles
            if done < every // 2:
                return
            new = rate * 1.25
        elif rate >= ceiling:  # at the limit: hold a while, then probe past it, bolder each time
            if done < (self._hold * every if self._growth == 1 else every):
                return
            if self._growth > 1:
                self._hold = 4  # the last probe held: the limit moved, probe again soon
            self._rate_ceiling = rate
            new = rate * (1 + step * self._growth)
            self._growth = min(self._growth * 2, 4.0)
        elif rate < backoff * ceiling * (1 - step):  # well below the limit: recover quickly
            if done < every // 4:
                return
            new = min(backoff * ceiling, rate * 1.25)
        else:  # close to the limit: carefully
            if done < every:
                return
            new = min(ceiling, rate * (1 + step))
        if self._ceil.rate_per_minute is not None:
            new = min(new, max(rate, self._ceil.rate_per_minute / 60))
        self._held_rate = rate
        self._rate = new
        self._since_rate_change = 0

    def _recent_rate(self) -> float | None:
        recent = list(self._accepts)[-self._cfg.rate_window_messages :]
        if len(recent) < 3 or recent[-1] - recent[0] <= _EPSILON:
            return None
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def _run_rate(self) -> float | None:
        """Accepted rate during this run of throttles, once the messages that were in flight when
        it began have come back: the server's own limit, since it is refusing the rest."""
        times = self._run_times
        if len(times) < 5 or times[-1] - times[0] <= _EPSILON:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def _rate_throttled(self, now: float) -> None:
        backoff = self._cfg.rate_backoff
        rate = self.rate_per_second
        # a throttle of a message booked before the last cut says nothing about the new pace
        fresh = self._outcomes > self._reserved_at_cut
        if self._run_start is None:  # the first throttle of a run
            self._run_start = now
            self._run_times = []
            self._run_boundary = self._reserved
            self._run_first = None
            measured = self._recent_rate()
            ceiling = self._rate_ceiling
            if rate is not None and ceiling is not None:  # throttled near the limit again
                self._hold = min(self._hold * 2, 32)
            held = self._held_rate
            if rate is not None:  # paced, so barely over: just under what passed
                low = min(rate, measured or rate)
                if ceiling is not None and rate <= ceiling:  # a limit that held no longer does
                    low = min(low, 0.99 * ceiling)
                elif held is not None and held > low:  # past the pace before the last increase,
                    low = math.sqrt(held * rate)  # which held: the limit lies between the two
                self._rate_ceiling = low
                new = backoff * low
            else:  # unpaced: bursts, no idea how far over; halve what passed
                new = 0.5 * (measured or 2.0)
        elif rate is None or not fresh:
            new = rate if rate is not None else 1.0
        elif (passed := self._run_rate()) is not None:  # what the server lets through
            self._rate_ceiling = passed
            new = backoff * passed  # (a throttle below it is the bucket's debt from before: keep)
        else:
            # throttled at the new pace too, too little passed to time it: cut by the share that
            # passed, and below what could have passed since the run began (the bucket was empty)
            elapsed = now - (self._run_first or now)
            bound = (len(self._run_times) + 1) / elapsed if elapsed > _EPSILON else math.inf
            new = min(rate, backoff * bound)
            if self._fresh_outcomes >= 4:
                new = min(new, rate * max(0.25, self._fresh_accepts / self._fresh_outcomes))
            elif self._fresh_outcomes >= 2 and not self._fresh_accepts:
                new = min(new, 0.5 * rate)
            if new < rate:
                self._rate_ceiling = min(self._rate_ceiling or rate, rate)
        if rate is None or new < rate:
            self._reserved_at_cut = self._reserved
            self._fresh_accepts = self._fresh_outcomes = 0
            if self._latency is not None:  # fewer connections, fewer slots booked at the old pace
                needed = max(1, math.ceil(new * self._latency * 1.2))
                self._rate_conns = min(self._rate_conns or needed, needed)
        self._rate = max(min(new, rate or new), self._cfg.min_rate_per_second)
        self._since_throttle = 0
        self._since_rate_change = 0
        self._growth = 1.0
        self._held_rate = None

    def _connections_throttled(self, now: float, open_connections: int) -> None:
        working = max(1, open_connections)
        base, limit = self._probe_base, self._conn_limit
        if base is not None:  # the probe one above the limit was refused: wait longer next time
            self._conn_quiet = min(self._cfg.connection_quiet_max_seconds, 2 * self._conn_quiet)
            limit = base
        elif limit is None:  # ramping: what worked before this one (some may be reconnecting)
            limit = max(working, self._target - 1)
        else:  # refused within the limit: the server has less room now; step down one at a time
            limit = max(working, limit - 1)
        self._probe_base = None
        self._conn_limit = max(1, limit)
        self._target = min(self._target, self._conn_limit)
        self._conn_throttled_at = now
        self._conn_successes = 0
        self._since_throttle = 0
        if open_connections == 0:  # not even one slot: the route waits, a little longer each time
            self._blocked_until = max(self._blocked_until, now + self._connect_backoff)
            self._connect_backoff = min(
                self._cfg.connect_backoff_max_seconds, 2 * self._connect_backoff
            )

    def _quota_limits(self) -> tuple[int | None, float | None]:
        quotas = [q for q in (self._quota, self._ceil.quota) if q is not None]
        window = self._ceil.quota_window_seconds or self._quota_window
        return (min(quotas) if quotas else None), window

    def _trim_window(self, now: float, window: float) -> None:
        while self._window_sends and self._window_sends[0] <= now - window:
            self._window_sends.popleft()

    def _quota_reached(self, now: float, hint: float | None) -> None:
        window = self._quota_limits()[1]
        if window is not None:
            self._trim_window(now, window)
            sent = len(self._window_sends)
        else:
            sent = self._sent_since_quota
        if sent > 0:
            self._quota = sent
        if hint is not None:
            wait = hint
        elif window is not None and self._window_sends:
            wait = self._window_sends[0] + window - now
        else:
            wait = self._quota_wait
            self._quota_wait = min(self._cfg.quota_wait_max_seconds, 2 * self._quota_wait)
        self._blocked_until = max(self._blocked_until, now + wait)
        self._sent_since_quota = 0
        self._since_throttle = 0
