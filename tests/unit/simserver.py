"""A discrete-event model of a limited SMTP server and an engine-like client driving the Pacer.

The server has a concurrent-connection cap (421 greeting), a per-message service time (longer
when more connections than it has workers share it), a token bucket rate limit with a burst or a
count per fixed window (Postfix anvil) or sliding window (throttles at MAIL), a per-connection
message cap (worded as a rate, if the model says so) and a quota per fixed window. Its limits
may change after a number of accepted messages (``later``).

The client does what the engine does, with the engine's own decisions where they are pure
(:func:`mailpacer.delivery.scheduler.connections_to_open` says how many to open): keeps
``target_connections`` connections,
``reserve()``s before each message, ``observe()``s every outcome, reconnects at
``messages_per_connection`` and honours ``blocked_for()``. Time is simulated, so thousands of
messages take milliseconds. While it runs it checks the pacer's promises and lists violations.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from dataclasses import dataclass, field

from mailpacer.core.classify import Verdict
from mailpacer.delivery.scheduler import connections_to_open
from mailpacer.pacing.pacer import Limits, Pacer, PacerConfig

V = Verdict
THROTTLES = frozenset({V.THROTTLE_CONNECTIONS, V.THROTTLE_RATE, V.THROTTLE_PER_CONNECTION, V.QUOTA})


@dataclass(frozen=True)
class ServerModel:
    """What the simulated server allows; :attr:`capacity` is the best any client can do."""

    max_connections: int = 2
    service_time: float = 0.1  #: seconds from MAIL to the 250 after DATA, per message
    connect_time: float = 0.05  #: TCP connect, greeting and EHLO
    reject_time: float = 0.01  #: round trip of a refused MAIL
    rate_per_second: float | None = None  #: token bucket refill, None = no rate limit
    burst: int = 5  #: token bucket size
    per_connection: int | None = None  #: messages accepted per connection, then 421
    quota: int | None = None  #: messages per fixed window
    quota_window: float = 3600.0
    #: a rate counted per window instead of a bucket: ``window_count`` messages per
    #: ``window_seconds``; "fixed" starts a window at the first message after the last one ended
    #: (anvil), "sliding" counts the messages of the last ``window_seconds``
    window_shape: str | None = None
    window_count: int = 50
    window_seconds: float = 10.0
    #: the verdict the per-connection refusal is read as (its words may say "rate")
    per_connection_verdict: Verdict = Verdict.THROTTLE_PER_CONNECTION
    per_connection_reply: str = "421 4.4.2 Error: too many messages in this connection"
    rate_reply: str = "450 4.7.1 Error: too much mail from 127.0.0.1"
    workers: int | None = None  #: beyond this many open connections, each message takes longer
    later: ServerModel | None = None  #: the limits after ``change_after`` accepted messages
    change_after: int = 0

    @property
    def capacity(self) -> float:
        """Messages per second of a perfect client (quota aside)."""
        if self.per_connection is None:
            per_connection = 1 / self.service_time
        else:
            cycle = self.per_connection * self.service_time + self.connect_time
            per_connection = self.per_connection / cycle
        capacity = min(self.max_connections, self.workers or 10**9) * per_connection
        if self.rate_per_second is not None:
            capacity = min(capacity, self.rate_per_second)
        if self.window_shape is not None:
            capacity = min(capacity, self.window_count / self.window_seconds)
        if self.later is not None:  # what the campaign's end is measured against
            return self.later.capacity
        return capacity


class FakeClock:
    """The simulation's clock, injected into the pacer."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class _Conn:
    ident: int
    count: int = 0  #: messages accepted on this connection
    admitted: bool = False  #: the server had a slot when the TCP connection arrived


@dataclass
class SimResult:
    """What happened: accept times, throttle replies, verdict counts, broken promises."""

    model: ServerModel
    accepted_at: list[float]
    throttles: int
    verdicts: Counter[Verdict]
    violations: list[str]
    elapsed: float
    pacer: Pacer
    max_target: int = 0
    rates: list[float | None] = field(default_factory=list)

    def throughput(self, skip: int = 0) -> float:
        """Accepted messages per second after the first ``skip`` (the warm-up)."""
        times = self.accepted_at[skip:]
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def ratio(self, skip: int = 0) -> float:
        """Throughput after the warm-up as a fraction of the model's capacity."""
        return self.throughput(skip) / self.model.capacity

    def throttles_per_100(self) -> float:
        """Throttle replies (any kind, 421 greetings included) per 100 messages sent."""
        return 100 * self.throttles / max(1, len(self.accepted_at))


class _Sim:
    def __init__(
        self,
        model: ServerModel,
        messages: int,
        learned: Limits | None,
        ceilings: Limits | None,
        config: PacerConfig | None,
    ) -> None:
        self.m = model
        self.clock = FakeClock()
        self.cfg = config or PacerConfig()
        self.ceilings = ceilings or Limits()
        self.pacer = Pacer(self.clock, learned=learned, ceilings=ceilings, config=config)
        self.heap: list[tuple[float, int, str, _Conn | None]] = []
        self.seq = itertools.count()
        self.pending = messages
        self.open = 0
        self.connecting = 0
        self.ids = itertools.count()
        self.wake_at = -1.0
        # server state
        self.srv_open = 0
        self.tokens = float(model.burst)
        self.refilled_at = 0.0
        self.window_counts: Counter[int] = Counter()
        self.window_start: float | None = None
        self.window_sends: list[float] = []
        # results and promise checks
        self.accepted_at: list[float] = []
        self.throttles = 0
        self.verdicts: Counter[Verdict] = Counter()
        self.violations: list[str] = []
        self.since_throttle = 10**9
        self.after_throttle: tuple[float, int] = (math.inf, 10**9)
        self.conn_throttle: tuple[float, int] | None = None
        self.max_target = 0
        self.rates: list[float | None] = []

    # ---- event plumbing
    def at(self, delay: float, kind: str, conn: _Conn | None = None) -> None:
        heapq.heappush(self.heap, (self.clock.now + delay, next(self.seq), kind, conn))

    def run(self, max_events: int) -> None:
        self.fill()
        for _ in range(max_events):
            if not self.heap:
                return
            self.clock.now, _, kind, conn = heapq.heappop(self.heap)
            getattr(self, f"on_{kind}")(conn)
        self.violations.append(f"did not finish within {max_events} events")

    # ---- the client (what the engine does)
    def backlog(self) -> bool:
        return self.pending > self.open

    def fill(self) -> None:
        blocked = self.pacer.blocked_for()
        if blocked > 0:
            if self.pending and self.wake_at <= self.clock.now:
                self.wake_at = self.clock.now + blocked
                self.at(blocked, "wake")
            return
        count = connections_to_open(  # the engine's own decision (delivery/scheduler.py)
            target=self.pacer.target_connections,
            running=self.open + self.connecting,
            work=self.pending + self.open,  # ready, plus one on the wire per open connection
        )
        for _ in range(count):
            self.connecting += 1
            conn = _Conn(next(self.ids))
            conn.admitted = self.srv_open < self.m.max_connections  # the server counts at accept
            self.srv_open += conn.admitted
            self.at(self.m.connect_time, "connected", conn)

    def on_wake(self, _: _Conn | None) -> None:
        self.fill()

    def on_connected(self, conn: _Conn | None) -> None:
        assert conn is not None
        self.connecting -= 1
        if not conn.admitted:
            self.observe(V.THROTTLE_CONNECTIONS, reply="421 4.7.0 Error: too many connections")
        else:
            self.open += 1
            self.pacer.on_connected(self.open)
            self.on_next(conn)
        self.fill()

    def close(self, conn: _Conn) -> None:
        self.open -= 1
        self.srv_open -= 1
        self.pacer.on_closed(self.open)

    def on_next(self, conn: _Conn | None) -> None:
        assert conn is not None
        cap = self.pacer.messages_per_connection
        if (
            self.pending == 0
            or self.open > self.pacer.target_connections
            or (cap is not None and conn.count >= cap)
            or self.pacer.blocked_for() > 0
        ):
            self.close(conn)
            self.fill()
            return
        wait = self.pacer.reserve()
        assert wait >= 0, wait
        self.pending -= 1
        self.at(wait, "mail", conn)

    # ---- the server
    def window_full(self, now: float) -> bool:
        m = self.m
        if m.window_shape == "fixed":
            if self.window_start is None or now - self.window_start >= m.window_seconds:
                self.window_start, self.window_sends = now, []
        else:
            self.window_sends = [t for t in self.window_sends if t > now - m.window_seconds]
        return len(self.window_sends) >= m.window_count

    def on_mail(self, conn: _Conn | None) -> None:
        assert conn is not None
        now = self.clock.now
        if self.m.later is not None and len(self.accepted_at) >= self.m.change_after:
            self.m = self.m.later  # the admin changed the limits
        m = self.m
        if m.per_connection is not None and conn.count >= m.per_connection:
            self.at(m.reject_time, "per_connection", conn)
            return
        if m.window_shape is not None:
            if self.window_full(now):
                self.at(m.reject_time, "rate", conn)
                return
            self.window_sends.append(now)
        window = int(now // m.quota_window)
        if m.quota is not None and self.window_counts[window] >= m.quota:
            self.at(m.reject_time, "quota", conn)
            return
        if m.rate_per_second is not None:
            elapsed = now - self.refilled_at
            self.tokens = min(m.burst, self.tokens + elapsed * m.rate_per_second)
            self.refilled_at = now
            if self.tokens < 1:
                self.at(m.reject_time, "rate", conn)
                return
            self.tokens -= 1
        self.window_counts[window] += 1
        crowd = max(1.0, self.srv_open / m.workers) if m.workers else 1.0
        self.at(m.service_time * crowd, "done", conn)

    def on_done(self, conn: _Conn | None) -> None:
        assert conn is not None
        conn.count += 1
        self.accepted_at.append(self.clock.now)
        self.observe(V.ACCEPTED, conn.count - 1)
        self.on_next(conn)

    def refused(self, conn: _Conn | None, verdict: Verdict, closes: bool, reply: str) -> None:
        assert conn is not None
        self.pending += 1
        self.observe(verdict, conn.count, reply=reply)
        if closes:
            self.close(conn)
            self.fill()
        else:
            self.on_next(conn)

    def on_per_connection(self, conn: _Conn | None) -> None:
        self.refused(conn, self.m.per_connection_verdict, True, self.m.per_connection_reply)

    def on_quota(self, conn: _Conn | None) -> None:
        self.refused(conn, V.QUOTA, False, "550 5.4.5 Daily user sending limit exceeded")

    def on_rate(self, conn: _Conn | None) -> None:
        self.refused(conn, V.THROTTLE_RATE, False, self.m.rate_reply)

    # ---- telling the pacer, and checking its promises
    def observe(
        self, verdict: Verdict, messages_on_connection: int = 0, reply: str | None = None
    ) -> None:
        pacer = self.pacer
        before_rate = pacer.rate_per_second or math.inf
        before_target = pacer.target_connections
        before_refuted = pacer.refuted
        pacer.observe(
            verdict,
            open_connections=self.open,
            backlog=self.backlog(),
            messages_on_connection=messages_on_connection,
            reply_text=reply,
        )
        self.verdicts[verdict] += 1
        rate = pacer.rate_per_second or math.inf
        target = pacer.target_connections
        self.max_target = max(self.max_target, target)
        self.rates.append(pacer.rate_per_second)
        now = self.clock.now
        refuted = pacer.refuted > before_refuted  # (a pace refuted by behaviour goes back up)
        if refuted:
            self.after_throttle = (rate, 10**9)
        if verdict in THROTTLES:
            self.throttles += 1
            if not refuted and (rate > before_rate or target > before_target):
                self.violations.append(f"{now:.2f}: sped up on {verdict}")
        if verdict in (V.THROTTLE_RATE, V.THROTTLE_CONNECTIONS, V.QUOTA):
            # a quota probe goes out alone; once it passes, the connections it narrowed are back
            allowed = target
            windowed = verdict is V.THROTTLE_RATE and (
                pacer.limits.window_messages is not None or pacer.blocked_for() > 0
            )
            if verdict is V.QUOTA or windowed:  # (a rate window is a quota of its own)
                allowed = self.after_throttle[1] if self.since_throttle < 5 else 10**9
            self.since_throttle = 0
            self.after_throttle = (rate, allowed)
            if verdict is V.THROTTLE_CONNECTIONS:
                self.conn_throttle = (now, pacer.limits.connections or 1)
        elif verdict is V.ACCEPTED:
            self.since_throttle += 1
            if self.since_throttle < 5 and (
                rate > self.after_throttle[0] + 1e-9 or target > self.after_throttle[1]
            ):
                self.violations.append(f"{now:.2f}: sped up during a run of throttles")
        if self.conn_throttle is not None:
            when, limit = self.conn_throttle
            if target > limit and now - when < self.cfg.connection_quiet_seconds:
                self.violations.append(f"{now:.2f}: {target} connections, above limit {limit}")
        if self.ceilings.connections is not None and target > self.ceilings.connections:
            self.violations.append(f"{now:.2f}: above the connection ceiling")
        if self.ceilings.rate_per_minute is not None and rate > self.ceilings.rate_per_minute / 60:
            self.violations.append(f"{now:.2f}: above the rate ceiling")
        self.fill()


def simulate(
    model: ServerModel,
    messages: int = 2000,
    *,
    learned: Limits | None = None,
    ceilings: Limits | None = None,
    config: PacerConfig | None = None,
    max_events: int = 500_000,
) -> SimResult:
    """Send ``messages`` through ``model`` with a fresh Pacer; return what happened."""
    sim = _Sim(model, messages, learned, ceilings, config)
    sim.run(max_events)
    return SimResult(
        model=model,
        accepted_at=sim.accepted_at,
        throttles=sim.throttles,
        verdicts=sim.verdicts,
        violations=sim.violations,
        elapsed=sim.clock.now,
        pacer=sim.pacer,
        max_target=sim.max_target,
        rates=sim.rates,
    )
