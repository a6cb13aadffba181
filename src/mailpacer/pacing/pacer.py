"""The per-route controller (DESIGN §5): how many connections, how fast, how many per connection.

Pure logic with an injected clock: the engine asks (:attr:`Pacer.target_connections`,
:meth:`Pacer.reserve`, :meth:`Pacer.blocked_for`) and reports (:meth:`Pacer.observe`); the pacer
never sleeps and never does I/O. Told nothing, it starts with one connection and no rate limit,
grows while every slot is busy and nothing throttles, and turns each throttle into a learned limit
that it only probes past after a quiet stretch. The rate part lives in
:mod:`mailpacer.pacing.rate`, the quota part in :class:`mailpacer.pacing.quota.QuotaWindow`, the
per-connection cap in :mod:`mailpacer.pacing.session_cap`.

Learned limits are hypotheses (:mod:`mailpacer.pacing.evidence`): the words of a reply suggest
which limit was hit, the server's behaviour decides. Rate throttles that land at one count on
every connection are a per-connection cap; rate throttles that keep coming while the pace is well
below one that passed are a window (the route waits for it to reset, then counts per window);
connections that work beyond a learned connection limit refute it. Each limit carries the sentence
that explains it (:attr:`Pacer.explanations`); persisted limits start a campaign, are probed
soon, and never cap it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from mailpacer.core.classify import Verdict
from mailpacer.core.limits import Limits
from mailpacer.pacing.evidence import Lesson, WindowReader, ordinal, quoted
from mailpacer.pacing.quota import QuotaWindow
from mailpacer.pacing.rate import RateConfig, RateControl
from mailpacer.pacing.session_cap import SessionCap

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
    window_wait_seconds: float = 1.0  #: a rate window that refuses everything: first wait
    cap_probe_messages: int = 200  #: clean messages before a per-connection cap is probed
    #: another connection must add at least this share of its fair gain (1/n) in messages/s
    connection_gain: float = 0.3
    free_connections: int = 8  #: up to this many, connections grow without measuring the gain
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
        self._conn_quiet = (  # a persisted limit is probed soon: it starts, it never caps
            self._cfg.connection_quiet_min_seconds
            if learned.connections
            else self._cfg.connection_quiet_seconds
        )
        self._plateau: int | None = None  #: more connections stopped adding throughput here
        self._level_at: tuple[float, int] | None = None  #: (when, accepted) the target was set
        self._level_rates: dict[int, float] = {}  #: messages/s measured per connection count
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
        # per connection, rate windows and quota
        self._cap = SessionCap(
            learned.messages_per_connection, probe_after=self._cfg.cap_probe_messages
        )
        self._mailmax: int | None = None
        self._reader = WindowReader(first_wait=self._cfg.window_wait_seconds)
        self._window: QuotaWindow | None = None
        if learned.window_messages and learned.window_seconds:
            self._window = self._rate_window(learned.window_messages, learned.window_seconds)
        self._accepted_count = 0
        self._stretch_reply: str | None = None
        self._refuted = 0
        self._lessons: dict[str, Lesson] = {k: Lesson(k, v) for k, v in learned.evidence}
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
        if self._quota.probing or self._reader.blocking:  # one message tells whether the
            target = 1  # window has reset
        if self._window is not None and self._window.probing:
            target = 1
        return max(1, target)

    @property
    def messages_per_connection(self) -> int | None:
        """Close a connection after this many messages (learned cap, LIMITS MAILMAX, ceiling)."""
        caps = [self._cap.applied, self._mailmax, self._ceil.messages_per_connection]
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
        in_flight = self._rate.outstanding
        quota = self._quota.blocked_for(now, in_flight=in_flight)
        window = self._reader.blocked_for(now)
        if self._window is not None:
            window = max(window, self._window.blocked_for(now, in_flight=in_flight))
        return max(self._blocked_until - now, quota, window, 0.0)

    @property
    def limits(self) -> Limits:
        """What this route was found to allow, for the store and the report."""
        rate = self._rate.learned
        window = self._window
        return Limits(
            connections=self._conn_limit,
            rate_per_minute=round(rate * 60, 2) if rate else None,
            messages_per_connection=self._cap.cap or self._mailmax,
            quota=self._quota.learned_quota,
            quota_window_seconds=self._quota.learned_window,
            window_messages=window.learned_quota if window else None,
            window_seconds=window.learned_window if window else None,
            evidence=tuple((k, v.sentence) for k, v in self._lessons.items()),
        )

    @property
    def refuted(self) -> int:
        """How many times behaviour refuted a pace that throttles had taught (the pace then
        goes back up: those throttles were not about it)."""
        return self._refuted

    @property
    def explanations(self) -> list[str]:
        """Why each limit was learned, in words with the reply that taught it."""
        return [lesson.sentence for lesson in self._lessons.values()]

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
        reply_text: str | None = None,
    ) -> None:
        """Learn from one outcome (a message's, or a connection's: a 421 greeting, a refusal).

        ``backlog``: the engine has more work waiting than open connections. ``reply_text``:
        the server's reply with its code (``"421 4.4.2 ..."``), ``""`` when the connection
        closed without one; it is quoted in :attr:`explanations`, and a reply that ends the
        connection (421, none) is how a per-connection cap shows whatever its words.
        """
        now = self._clock()
        self._open = open_connections
        if verdict is Verdict.THROTTLE_RATE and self._session_capped(
            messages_on_connection, reply_text
        ):
            verdict = Verdict.THROTTLE_PER_CONNECTION
        if verdict in _MESSAGE_VERDICTS:
            self._rate.outcome(now, verdict is Verdict.ACCEPTED, open_connections)
        hint = None
        if retry_after is not None and retry_after > 0 and math.isfinite(retry_after):
            hint = min(retry_after, self._cfg.max_hint_seconds)
        if verdict is Verdict.ACCEPTED:
            self._accepted(now, open_connections, backlog, messages_on_connection)
        elif verdict is Verdict.THROTTLE_CONNECTIONS:
            self._connections_throttled(now, open_connections, reply_text)
        elif verdict is Verdict.THROTTLE_RATE:
            self._since_throttle = 0
            self._rate_throttled(now, hint, reply_text)
            hint = None if self._window is not None else hint
        elif verdict is Verdict.THROTTLE_PER_CONNECTION:
            cap = self._cap.throttled(messages_on_connection, told=True)
            if cap is not None and "messages_per_connection" not in self._lessons:
                self._learn(
                    "messages_per_connection",
                    f"the server refused a connection's {ordinal(cap + 1)} message with "
                    f"{quoted(reply_text)} → {cap} messages per connection",
                )
            hint = None  # a reconnect is the cure, not a pause
        elif verdict is Verdict.QUOTA:
            self._since_throttle = 0
            self._quota.refused(now, hint)
            if self._quota.learned_quota is not None:
                self._learn(
                    "quota",
                    f"the server refused further messages with {quoted(reply_text)} → "
                    f"{self._quota.learned_quota} messages per quota window",
                )
            hint = None
        else:
            hint = None  # greylist hints are the message's business, not the route's
        if hint is not None:
            self._blocked_until = max(self._blocked_until, now + hint)

    def adopt(self, limits: Limits) -> list[str]:
        """Take another process's lessons about this route (DESIGN §6): a learned connection
        limit, rate or per-connection cap stricter than this pacer's own (or one it lacks)
        becomes its own, with the evidence that taught it. Looser ones are left alone (this
        pacer probes on its own). Returns the limits adopted."""
        now = self._clock()
        adopted: list[str] = []
        conns = limits.connections
        if conns is not None and (self._conn_limit is None or conns < self._conn_limit):
            self._conn_limit = conns
            self._target = min(self._target, conns)
            self._probe_base = None
            self._conn_changed_at = now
            self._conn_successes = 0
            adopted.append("connections")
        per_minute = limits.rate_per_minute
        if per_minute is not None and self._rate.adopt(per_minute / 60):
            adopted.append("rate_per_minute")
        cap = limits.messages_per_connection
        if cap is not None and self._cap.adopt(cap):
            adopted.append("messages_per_connection")
        evidence = dict(limits.evidence)
        for name in adopted:
            if name in evidence:
                self._learn(name, evidence[name])
        return adopted

    # ---- learning ------------------------------------------------------------------------------

    def _quiet(self) -> bool:
        return self._since_throttle >= max(self._cfg.quiet_messages, 2 * self._open)

    def _learn(self, limit: str, sentence: str) -> None:
        self._lessons.pop(limit, None)  # (the newest last)
        self._lessons[limit] = Lesson(limit, sentence)

    def _session_capped(self, carried: int, reply_text: str | None) -> bool:
        """Whether a "rate" throttle is a per-connection cap by what it does (the same count on
        every connection, the connection ended) whatever its words."""
        closing = reply_text is not None and (reply_text == "" or reply_text.startswith("421"))
        known = self._cap.cap
        cap = self._cap.throttled(carried, told=False, closing=closing)
        if cap is None:
            return False
        if known != cap:
            self._refuted += 1
            self._rate.refute()  # those throttles did not come from the pace
            self._lessons.pop("rate_per_minute", None)
            self._learn(
                "messages_per_connection",
                f"the words of {quoted(reply_text)} suggest a rate, but every refusal came "
                f"after a connection's {ordinal(cap)} message → {cap} messages per connection",
            )
        return True

    def _rate_window(self, count: int, high: float, low: float | None = None) -> QuotaWindow:
        return QuotaWindow(
            learned=Limits(quota=count, quota_window_seconds=high),
            ceilings=Limits(),
            first_wait=self._cfg.window_wait_seconds,
            max_wait=self._cfg.quota_wait_max_seconds,
            low=low,
        )

    def _rate_throttled(self, now: float, hint: float | None, reply_text: str | None) -> None:
        window = self._window
        if window is not None:  # a known window: it is full; wait for it to reset
            window.refused(now, hint)
            return
        reader = self._reader
        if reader.blocking:  # a probe, or one booked before the stretch: time tells, not pace
            reader.refused(now)
            return
        self._rate.throttled(now)
        learned = self._rate.learned
        if learned is not None:
            said = Limits(rate_per_minute=learned * 60).describe()
            self._learn(
                "rate_per_minute",
                f"the server refused a message with {quoted(reply_text)} → {said}",
            )
        if self._rate.starved:
            reader.block(now)
            self._refuted += 1
            self._rate.undo_run()
            self._stretch_reply = reply_text

    def _window_read(self, now: float) -> None:
        reading = self._reader.accepted(now)
        if reading is None or self._window is not None:
            return
        confirmed = self._reader.confirmed
        if confirmed is None:
            return
        self._window = self._rate_window(confirmed.messages, confirmed.high, confirmed.low)
        self._window.accepted(now)
        self._refuted += 1
        self._rate.refute()
        self._lessons.pop("rate_per_minute", None)
        self._learn(
            "window_messages",
            f"{confirmed.messages} messages passed, then every message was refused with "
            f"{quoted(self._stretch_reply)} even at a slower pace, twice, until at most "
            f"{confirmed.high:.1f} s after the first → {confirmed.messages} messages per "
            f"{confirmed.high:.1f} s window",
        )

    def _accepted(
        self, now: float, open_connections: int, backlog: bool, carried_before: int
    ) -> None:
        self._connect_backoff = self._cfg.connect_backoff_seconds
        self._accepted_count += 1
        self._quota.accepted(now)
        if self._window is not None:
            self._window.accepted(now)
        else:
            self._window_read(now)
        refuted = self._cap.accepted(carried_before)
        if refuted is not None:
            self._learn("messages_per_connection", refuted)
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
            self._learn(
                "connections",
                f"{open_connections} connections worked, more than the {base} learned "
                f"→ at least {open_connections} connections",
            )
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
            if not self._adds_throughput(now):
                return
            self._target += 1
            self._conn_successes = 0
        elif now - self._conn_changed_at >= self._conn_quiet:
            self._target = limit + 1  # probe one above the learned limit
            self._probe_base = limit
            self._conn_successes = 0

    def _adds_throughput(self, now: float) -> bool:
        """Whether the last connection added raised messages/s enough to try one more (told
        nothing about connections, a server that never refuses one still has a point where
        another only shares the same throughput)."""
        n = self._target
        if n < self._cfg.free_connections:
            return True
        if self._plateau is not None:
            if now - self._conn_changed_at < self._conn_quiet:
                return False
            self._plateau = self._level_at = None  # quiet long enough: measure again
        level = self._level_at
        if level is None:
            if self._open >= n:
                self._level_at = (now, self._accepted_count)
            return False  # (this level is measured from here, once all its connections work)
        since, accepted = level
        passed = self._accepted_count - accepted
        if passed < max(20, 5 * n) or now <= since:
            return False  # not measured enough yet
        rate = passed / (now - since)
        self._level_rates[n] = rate
        before = self._level_rates.get(n - 1)
        self._level_at = None
        if before is not None and rate < before * (1 + self._cfg.connection_gain / (n - 1)):
            self._plateau = n
            self._conn_changed_at = now
            self._learn(
                "connections",
                f"{n} connections carried {rate:.1f} messages/s, {n - 1} carried "
                f"{before:.1f}: another connection does not add throughput",
            )
            return False
        return True

    def _connections_throttled(
        self, now: float, open_connections: int, reply_text: str | None = None
    ) -> None:
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
        self._learn(
            "connections",
            f"the server refused a {ordinal(working + 1)} connection with {quoted(reply_text)} "
            f"→ {self._conn_limit} connection{'s' if self._conn_limit != 1 else ''}",
        )
        self._target = min(self._target, self._conn_limit)
        self._conn_changed_at = now
        self._conn_successes = 0
        self._since_throttle = 0
        if open_connections == 0:  # not even one slot: the route waits, a little longer each time
            self._blocked_until = max(self._blocked_until, now + self._connect_backoff)
            backoff = 2 * self._connect_backoff
            self._connect_backoff = min(self._cfg.connect_backoff_max_seconds, backoff)
