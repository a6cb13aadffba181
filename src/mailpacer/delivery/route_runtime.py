"""One route in this process: its pacer, its connections, and the campaigns it carries.

A route is a server + account (DESIGN §5): its limits bind every campaign that uses it. So the
pacer, the reading of the route's replies (:class:`~mailpacer.core.context.RouteHistory`) and
the connections belong to the route, and every campaign on it is a *feed* the connections take
messages from — the highest priority first, campaigns of one priority in turn. Learned limits
are saved whenever they change, so a killed run keeps what it learned. A route that fails
(nobody answers, our credentials are refused, an internal error) tells each feed and lets go of
them: a campaign spread over a group of routes goes on through the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mailpacer.core.classify import (
    Classification,
    Phase,
    Reply,
    Verdict,
    classify,
    parse_limits_keyword,
)
from mailpacer.core.context import RouteHistory
from mailpacer.core.errors import MailpacerError, StoreUnavailable
from mailpacer.core.limits import Limits
from mailpacer.core.outcome import ROUTE_THROTTLES
from mailpacer.core.route import Route
from mailpacer.delivery.budget import LocalBudget, RouteBudget
from mailpacer.delivery.campaign_run import CampaignRun
from mailpacer.delivery.scheduler import ConnectGate, Timing, connections_to_open
from mailpacer.delivery.smtp import ConnectFailed, Connection, frame_payload
from mailpacer.pacing.pacer import Pacer, PacerConfig
from mailpacer.store import ClaimedMessage

__all__ = ["RouteRuntime"]

log = logging.getLogger("mailpacer")
V = Verdict
_SETUP_PHASES = frozenset({Phase.CONNECT, Phase.EHLO, Phase.STARTTLS, Phase.AUTH})
_ACCEPTING_SECONDS = 10.0  #: an acceptance this recent means the route works right now
#: the supervisor looks at least this often; it is woken for everything that matters (work
#: claimed, a connection closed, the last campaign gone), so this is only a safety net
LOOK_SECONDS = 1.0


class RouteRuntime:
    """A route's pacer and connections, shared by every campaign on it in this process."""

    def __init__(
        self,
        route: Route,
        *,
        learned: Limits | None,
        ceilings: Limits | None,
        pacer_config: PacerConfig,
        timing: Timing,
        save_limits: Callable[[dict[str, Any]], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        budget: RouteBudget | None = None,
    ) -> None:
        self.route = route
        self.pacer = Pacer(clock, learned=learned, ceilings=ceilings, config=pacer_config)
        self.history = RouteHistory()
        self.gate = ConnectGate(clock, timing, name=route.key)
        self.timing = timing
        self.ceilings = ceilings
        self.feeds: list[CampaignRun] = []
        self.open = 0
        self.connecting = 0  #: connections being opened (greeting, EHLO, TLS, AUTH)
        self.peak = 0  #: most connections open at once
        self.carrying = 0  #: messages this route's connections hold (rate wait or transaction)
        self._store_backoff = 0.0  #: a start mark could not be stored: wait before the next
        self._made = 0
        self._turn = 0  #: round-robin position among feeds of one priority
        #: shared with other processes on the route (slots, pace, limits); local: alone
        self.budget: RouteBudget = budget or LocalBudget(save_limits)
        self._saved = (learned or Limits()).to_dict()
        self._work = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_accepted = -math.inf  #: when the server last accepted a message (monotonic)

    def __repr__(self) -> str:
        return (
            f"<RouteRuntime {self.route.key} feeds={len(self.feeds)} open={self.open}"
            f" connecting={self.connecting} {self.pacer!r}>"
        )

    # -- feeds ---------------------------------------------------------------------------
    def attach(self, run: CampaignRun) -> None:
        """Carry ``run``'s messages too; starts the route's connections when it was idle."""
        if self.failure is not None:
            run.route_failed(self.route.key, self.failure)
            return
        self.feeds.append(run)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._supervise(), name=f"route {self.route.key}")
            self._task.add_done_callback(self._ended)
        self.wake()

    def detach(self, run: CampaignRun) -> None:
        """``run`` has stopped; it gets no more connections' attention."""
        if run in self.feeds:
            self.feeds.remove(run)
        self.wake()

    def wake(self) -> None:
        """Something changed (messages ready, a stop): connections and the supervisor look."""
        self._work.set()

    async def wait_closed(self) -> None:
        """Wait until every connection of this route is closed (after the last detach).

        An error in a connection (a bug, never a server's reply) is raised here."""
        if self._task is not None:
            await self._task

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A bug in a connection ends the route: every campaign on it is told why."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.error("route %s stopped by an internal error", self.route.key, exc_info=error)
        self._fail(f"internal error: {_describe(error)}")

    def _fail(self, why: str) -> None:
        """The route has failed: no connection opens any more; every feed is told (a campaign
        with no other route stops) and let go of."""
        self.gate.fail(why)
        feeds, self.feeds = list(self.feeds), []
        for run in feeds:
            run.route_failed(self.route.key, self.gate.failure or why)
        self.wake()

    @property
    def failure(self) -> str | None:
        """Why the route failed (it opens no connection any more), or None while it works."""
        return self.gate.failure

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the route's connections, if one did."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    # -- scheduling ----------------------------------------------------------------------
    def _ready(self) -> int:
        return sum(len(run.ready) for run in self.feeds if run.has_work())

    def _on_wire(self) -> int:
        return self.carrying

    def target(self) -> int:
        """Connections the route should have open now (pacer, campaign ceilings)."""
        target = self.pacer.target_connections
        if self.ceilings is not None and self.ceilings.connections is not None:
            target = min(target, self.ceilings.connections)
        return target

    # -- sharing the route with other processes (the budget) -------------------------------
    def slot_limit(self) -> int:
        """Connection slots below which this process may hold one: the route's target, the
        most any process's pacer wants (so one that has no connection yet still gets its share)
        but never past the learned limit, except by this pacer's own probe (so the probe's
        answer reaches the pacer that probes)."""
        own = self.target()
        shared = max(own, self.budget.others_target)
        learned = self.pacer.limits.connections
        if learned is not None:
            shared = min(shared, learned)
        if self.ceilings is not None and self.ceilings.connections is not None:
            shared = min(shared, self.ceilings.connections)
        return max(own, shared)

    def _route_open(self) -> int:
        """Connections open on the route: this process's and the slots others hold."""
        return self.open + self.budget.others

    async def _sync(self) -> None:
        """Publish what the pacer learned; heartbeat; adopt what other processes learned."""
        await self._persist()
        wants = min(self.slot_limit(), self._ready() + self._on_wire())
        stored = await self.budget.sync(wants, self.target())
        if stored is not None and self.pacer.adopt(stored):
            self._saved = self.pacer.limits.to_dict()
            self.wake()

    def _take(self) -> tuple[CampaignRun, ClaimedMessage] | None:
        """The next message: the highest priority feed with work, feeds of a priority in turn."""
        candidates = [run for run in self.feeds if run.has_work()]
        if not candidates:
            return None
        top = max(run.priority for run in candidates)
        tied = [run for run in candidates if run.priority == top]
        self._turn = (self._turn + 1) % len(tied)
        run = tied[self._turn]
        message = run.take()
        return (run, message) if message is not None else None

    async def _supervise(self) -> None:
        """Open connections as the pacer allows while any feed has work; persist what the
        pacer learns. Ends when no feed is left and every connection has closed."""
        try:
            await self._run_connections()
        finally:
            await self.budget.leave()

    async def _run_connections(self) -> None:
        async with asyncio.TaskGroup() as group:
            slots: dict[int, asyncio.Task[None]] = {}
            while True:
                # cleared before looking, not after: a wake during the awaits below is kept
                self._work.clear()
                for slot, task in list(slots.items()):
                    if task.done():
                        del slots[slot]
                if not self.feeds and not slots:
                    break
                await self._sync()
                wait = self.gate.wait()
                blocked = self.pacer.blocked_for()
                if self.feeds and self.gate.failure is None and wait <= 0 and blocked <= 0:
                    count = connections_to_open(
                        target=self.slot_limit(),
                        running=len(slots),
                        work=self._ready() + self._on_wire(),
                    )
                    for _ in range(count):
                        got = await self.budget.acquire(self.slot_limit())
                        if got is None:
                            break
                        slots[got] = group.create_task(self._connection(got), name=f"conn-{got}")
                timeout = min([x for x in (wait, blocked) if x > 0] or [LOOK_SECONDS])
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.01, min(timeout, LOOK_SECONDS))):
                        await self._work.wait()
            await self._persist()

    async def _persist(self) -> None:
        limits = self.pacer.limits.to_dict()
        if limits != self._saved:
            before, self._saved = self._saved, limits
            await self.budget.publish(before, limits)

    # -- one connection ------------------------------------------------------------------
    async def _connection(self, slot: int) -> None:
        conn: Connection | None = None
        try:
            while self.feeds:
                if slot >= self.slot_limit() or self.pacer.blocked_for() > 0:
                    return
                if not self.budget.keeps(slot):  # another process is short of its share
                    return
                if self.gate.failure is not None:
                    return
                if self._ready() == 0:
                    if not await self._idle(slot):
                        return
                    continue
                if conn is None or not conn.alive:
                    if conn is not None:
                        conn = None
                        self._closed()
                    conn = await self._connect()
                    if conn is None:
                        return
                    continue  # the world may have changed while connecting
                picked = self._take()
                if picked is None:
                    continue
                run, message = picked
                self.carrying += 1
                # the mark must be stored before the final "." can go; it is written while the
                # rate wait and MAIL/RCPT/DATA run, not before them
                marking = asyncio.ensure_future(run.mark_started(message.id))
                try:
                    delay = self.pacer.reserve()
                    rate = self.pacer.rate_per_second
                    if rate is not None:  # the route's pace binds every process on it
                        delay = max(delay, await self.budget.pace(1.0 / rate))
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if run.stopping:  # paused or cancelled while it waited for its slot
                        await marking
                        run.give_back(message)
                        continue
                    await self._send(conn, run, message, marking)
                finally:
                    self.carrying -= 1
                    if not marking.done():
                        marking.cancel()
                cap = self.pacer.messages_per_connection
                if conn.alive and cap is not None and conn.messages >= cap:
                    await conn.close()
        finally:
            if conn is not None:
                await conn.close()
                self._closed()
            await self.budget.release(slot)
            self.wake()

    async def _idle(self, slot: int) -> bool:
        """Wait for work; False when idle long enough that the connection should close (or
        another process needs its slot)."""
        deadline = time.monotonic() + self.timing.idle_close_seconds
        while self._ready() == 0 and self.feeds:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.budget.keeps(slot):
                return False
            self._work.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._work.wait()
        return bool(self.feeds)

    async def _connect(self) -> Connection | None:
        self._made += 1
        self.connecting += 1
        try:
            conn = await Connection.open(self.route, self._made)
        except ConnectFailed as failure:
            self.connecting -= 1
            if failure.unreachable:  # nobody listens (an outage, a wrong port): not a limit
                self._unreachable(failure.reply)
                return None
            # the others being opened got past TCP too: they count as working for the reading
            others = self._route_open() + self.connecting
            result = classify(failure.reply, self._rules())
            verdict = self.history.interpret(failure.reply, result, open_connections=others)
            self._connect_failed(failure.reply, verdict)
            return None
        except BaseException:
            self.connecting -= 1
            raise
        self.connecting -= 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.gate.opened()
        self.pacer.on_connected(self._route_open())
        mailmax = parse_limits_keyword(conn.extensions.get("_ehlo", "")).get("MAILMAX")
        if mailmax is not None:
            self.pacer.apply_server_limits(mailmax=mailmax)
        return conn

    def _closed(self) -> None:
        self.open -= 1
        self.pacer.on_closed(self._route_open())

    def _rules(self) -> tuple[Any, ...]:
        """Reply rules for replies that belong to no campaign: the first feed's (they are the
        defaults plus the user's, the same for every campaign started from one config)."""
        return self.feeds[0].rules if self.feeds else ()

    def _unreachable(self, reply: Reply) -> None:
        """TCP did not get through: back off (the gate decides when the route has failed),
        teach the pacer nothing."""
        self.gate.refused(why=reply.text, throttled=False, open_connections=self.open, fatal=False)
        self._gate_failed()

    def _gate_failed(self) -> None:
        if self.gate.failure is not None:
            self._fail(self.gate.failure)

    def _connect_failed(self, reply: Reply, result: Classification) -> None:
        verdict = result.verdict
        self.pacer.observe(
            verdict,
            open_connections=self._route_open(),
            backlog=self._ready() > 0,
            retry_after=result.retry_after,
            reply_text=_said(reply),
        )
        text = f"{reply.code or ''} {reply.text}".strip()
        throttled = verdict in ROUTE_THROTTLES
        if throttled and self.feeds:
            self.feeds[0].throttled()
        self.gate.refused(
            why=f"{reply.phase.value}: {text}" if verdict is V.ROUTE_FAILURE else text,
            throttled=throttled,
            open_connections=self._route_open(),
            fatal=verdict is V.ROUTE_FAILURE,
        )
        self._gate_failed()

    async def _send(
        self,
        conn: Connection,
        run: CampaignRun,
        message: ClaimedMessage,
        marking: asyncio.Future[None],
    ) -> None:
        try:
            payload = frame_payload(run.render(message.variables))
        except MailpacerError as exc:
            await marking
            run.render_failed(message, exc)
            return

        async def marked() -> None:
            await marking

        try:
            reply = await conn.send(run.sender, message.email, payload, before_payload=marked)
            await marking  # stored by now whatever the reply (a refusal may come before DATA)
        except StoreUnavailable:
            # the start mark is not stored, so the payload was not sent: the message goes back
            # to the front of the queue (still ours), the session (maybe after a 354) is closed
            await conn.close()
            run.put_back(message)
            self._store_backoff = min(2 * self._store_backoff or 0.2, 5.0)
            await asyncio.sleep(self._store_backoff)
            return
        self._store_backoff = 0.0
        result = classify(reply, run.rules)
        result = self.history.interpret(
            reply, result, open_connections=self._route_open(), message=message.id
        )
        verdict = result.verdict
        working = self._route_open()
        if verdict is V.THROTTLE_CONNECTIONS and reply.phase not in _SETUP_PHASES:
            working -= 1  # refused inside a session: this connection is the one too many
        self.pacer.observe(
            verdict,
            open_connections=max(0, working),
            backlog=self._ready() > 0,
            messages_on_connection=reply.messages_on_connection,
            retry_after=result.retry_after,
            reply_text=_said(reply),
        )
        now = time.monotonic()
        accepting = now - self._last_accepted < _ACCEPTING_SECONDS
        if verdict is V.ACCEPTED:
            self._last_accepted = now
        run.record(message, reply, result, route_accepting=accepting, route=self.route.key)
        if verdict is V.ROUTE_FAILURE:
            self._fail(f"{reply.phase.value}: {reply.code or ''} {reply.text}".strip())
        self.wake()


def _describe(error: BaseException | None) -> str:
    """The innermost error of an exception group, as ``Type: text``."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _said(reply: Reply) -> str:
    """The reply as the pacer quotes it: ``"421 4.4.2 ..."``, or ``""`` when none came."""
    return f"{reply.code} {reply.text}" if reply.code is not None else ""
