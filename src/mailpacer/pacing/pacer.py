"""The per-route controller (DESIGN §5): how many connections, how fast, how many per connection.

Pure logic with an injected clock: the engine asks (:attr:`Pacer.target_connections`,
:meth:`Pacer.reserve`, :meth:`Pacer.blocked_for`) and reports (:meth:`Pacer.observe`); the pacer
never sleeps and never does I/O. Told nothing, it starts with one connection and no rate limit,
grows while every slot is busy and nothing throttles, and turns each throttle into a learned limit
that it only probes past after a quiet stretch. The rate part lives in
:mod:`mailpacer.pacing.rate`, the quota part in :class:`mailpacer.pacing.quota.QuotaWindow`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from mailpacer.core.classify import Verdict
from mailpacer.core.limits import Limits
from mailpacer.pacing.quota import QuotaWindow
from mailpacer.pacing.rate import RateConfig, RateControl

__all__ = ["Limits", "Pacer", "PacerConfig"]

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
class PacerConfig:
    """Tuning knobs; the defaults are what the simulator tests hold the pacer to."""

    connection_quiet_seconds: float = 60.0  #: after a connection throttle, wait before probing
    connection_quiet_max_seconds: float = 3600.0  #: the wait doubles after each failed probe
    connection_quiet_min_seconds: float = 10.0  #: and halves after each successful one
    connect_backoff_seconds: float = 5.0  #: the route waits when not even one connection gets in
    connect_backoff_max_seconds: float = 300.0
    quiet_messages: int = 10  #: accepted messages without a throttle that end a run of throttles
    quota_wait_seconds: float = 60.0  #: after a quota verdict when nothing says how long: wait,
    quota_wait_max_seconds: float = 3600.0  #: then probe, doubling the wait up to this
    max_hint_seconds: float = 86400.0  #: longer server hints are cut to this
    rate: RateConfig = field(default_factory=RateConfig)


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
        self._since_throttle = 1 << 30  #: accepted messages since the last throttle of any kind
        # connections
        self._conn_limit = learned.connections
        self._target = learned.connections or 1
        self._conn_changed_at = now if learned.connections else -math.inf
        self._conn_quiet = self._cfg.connection_quiet_seconds
        self._probe_base: int | None = None
        self._conn_successes = 0
        self._connect_backoff = self._cfg.connect_backoff_seconds
        # rate (messages per second inside)
        per_minute, ceiling = learned.rate_per_minute, self._ceil.rate_per_minute
        self._rate = RateControl(
            self._cfg.rate,
            learned=per_minute / 60 if per_minute else None,
            ceiling=ceiling / 60 if ceiling else None,
        )
        # per connection and quota
        self._per_connection = learned.messages_per_connection
        self._mailmax: int | None = None
        self._quota = QuotaWindow(
            learned=learned,
            ceilings=self._ceil,
            first_wait=self._cfg.quota_wait_seconds,
            max_wait=self._cfg.quota_wait_max_seconds,
        )
        self._blocked_until = -math.inf

    # ---- what the engine asks ----------------------------------------------------------------

    @property
    def target_connections(self) -> int:
        """How many connections the engine should keep open now, while it has work."""
        target = self._target
        if self._ceil.connections is not None:
            target = min(target, self._ceil.connections)
        needed = self._rate.needed_connections
        if needed is not None:  # the rate binds: idle connections only hold slots booked early
            target = min(target, needed)
        if self._quota.probing:  # one message tells whether the quota window has reset
            target = 1
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
        return self._rate.per_second

    def reserve(self) -> float:
        """Book the next send slot; returns seconds to wait before starting it (0.0 = now)."""
        return self._rate.reserve(self._clock())

    def blocked_for(self) -> float:
        """Seconds the whole route must wait (quota window, a server's hint); 0.0 otherwise."""
        now = self._clock()
        quota = self._quota.blocked_for(now, in_flight=self._rate.outstanding)
        return max(self._blocked_until - now, quota, 0.0)

    @property
    def limits(self) -> Limits:
        """What this route was found to allow, for the store and the report."""
        rate = self._rate.learned
        return Limits(
            connections=self._conn_limit,
            rate_per_minute=round(rate * 60, 2) if rate else None,
            messages_per_connection=self._per_connection or self._mailmax,
            quota=self._quota.learned_quota,
            quota_window_seconds=self._quota.learned_window,
        )

    @property
    def state(self) -> str:
        """One word for humans: blocked, throttled, probing, steady or ramping."""
        if self.blocked_for() > 0:
            return "blocked"
        if not self._quiet():
            return "throttled"
        if (self._conn_limit is not None and self._target > self._conn_limit) or self._rate.probing:
            return "probing"
        if self._conn_limit is not None or self._rate.per_second is not None:
            return "steady"
        return "ramping"

    def __repr__(self) -> str:
        rate = self.rate_per_second
        shown = f"{rate:.1f}/s" if rate is not None else "unlimited"
        target = self.target_connections
        return f"<Pacer connections={self._open}/{target} rate={shown} {self.state}>"

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
        """Learn from one outcome (a message's, or a connection's: a 421 greeting, a refusal).

        ``backlog``: the engine has more work waiting than open connections.
        """
        now = self._clock()
        self._open = open_connections
        if verdict in _MESSAGE_VERDICTS:
            self._rate.outcome(now, verdict is Verdict.ACCEPTED, open_connections)
        hint = None
        if retry_after is not None and retry_after > 0 and math.isfinite(retry_after):
            hint = min(retry_after, self._cfg.max_hint_seconds)
        if verdict is Verdict.ACCEPTED:
            self._accepted(now, open_connections, backlog)
        elif verdict is Verdict.THROTTLE_CONNECTIONS:
            self._connections_throttled(now, open_connections)
        elif verdict is Verdict.THROTTLE_RATE:
            self._since_throttle = 0
            self._rate.throttled(now)
        elif verdict is Verdict.THROTTLE_PER_CONNECTION:
            if messages_on_connection >= 1:  # what this connection carried is what one may carry
                known = self._per_connection or messages_on_connection
                self._per_connection = min(known, messages_on_connection)
            hint = None  # a reconnect is the cure, not a pause
        elif verdict is Verdict.QUOTA:
            self._since_throttle = 0
            self._quota.refused(now, hint)
            hint = None
        else:
            hint = None  # greylist hints are the message's business, not the route's
        if hint is not None:
            self._blocked_until = max(self._blocked_until, now + hint)

    # ---- learning ------------------------------------------------------------------------------

    def _quiet(self) -> bool:
        return self._since_throttle >= max(self._cfg.quiet_messages, 2 * self._open)

    def _accepted(self, now: float, open_connections: int, backlog: bool) -> None:
        self._connect_backoff = self._cfg.connect_backoff_seconds
        self._quota.accepted(now)
        self._since_throttle += 1
        self._conn_successes += 1
        quiet = self._quiet()
        self._rate.accepted(now, quiet=quiet)
        if quiet:  # never speed up during a run of throttles
            self._grow_connections(now, open_connections, backlog)

    def _grow_connections(self, now: float, open_connections: int, backlog: bool) -> None:
        base = self._probe_base
        if (
            base is not None
            and open_connections > base
            and self._conn_successes >= open_connections
        ):
            self._conn_limit = open_connections  # the probe held: the server allows more
            self._probe_base = None
            self._conn_changed_at = now
            self._conn_quiet = max(self._cfg.connection_quiet_min_seconds, self._conn_quiet / 2)
        if not backlog or open_connections < self._target or self._conn_successes < self._target:
            return
        if self._rate.binding:
            return  # the rate, not the connection count, is what holds us back
        ceiling = self._ceil.connections
        if ceiling is not None and self._target >= ceiling:
            return
        limit = self._conn_limit
        if limit is None or self._target < limit:
            self._target += 1
            self._conn_successes = 0
        elif now - self._conn_changed_at >= self._conn_quiet:
            self._target = limit + 1  # probe one above the learned limit
            self._probe_base = limit
            self._conn_successes = 0

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
        self._conn_changed_at = now
        self._conn_successes = 0
        self._since_throttle = 0
        if open_connections == 0:  # not even one slot: the route waits, a little longer each time
            self._blocked_until = max(self._blocked_until, now + self._connect_backoff)
            backoff = 2 * self._connect_backoff
            self._connect_backoff = min(self._cfg.connect_backoff_max_seconds, backoff)
