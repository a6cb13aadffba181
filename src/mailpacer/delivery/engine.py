"""The delivery engine (DESIGN §2): claim → pacer slot → render → send → classify → record → event.

One asyncio task per open connection ("worker"); the pacer decides how many there may be and how
fast they may send, this loop only acts on its answers. Outcomes are buffered and written in small
batched transactions. A campaign stops when nothing is left to send, when a user pauses or cancels
it (from any process sharing the store), when the route fails, or on :meth:`Engine.stop`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailpacer.core.classify import (
    DEFAULT_RULES,
    Classification,
    Phase,
    Reply,
    Rule,
    Verdict,
    classify,
    parse_limits_keyword,
)
from mailpacer.core.context import RouteHistory
from mailpacer.core.errors import MailpacerError
from mailpacer.core.events import Emitter, Event, EventKind, Observer
from mailpacer.core.outcome import ROUTE_THROTTLES, decide
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import Route
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.delivery.lease import is_alive, worker_identity
from mailpacer.delivery.report import Report, build_report
from mailpacer.delivery.smtp import ConnectFailed, Connection, frame_payload
from mailpacer.delivery.tally import RunTally
from mailpacer.pacing.pacer import Limits, Pacer, PacerConfig
from mailpacer.store import CampaignRecord, ClaimedMessage, Outcome, Store

log = logging.getLogger("mailpacer")
V = Verdict
M = MessageState
_WAITING_AFTER = 1.0  #: seconds a route block must last to show the campaign as waiting
_SETUP_PHASES = frozenset({Phase.CONNECT, Phase.EHLO, Phase.STARTTLS, Phase.AUTH})
_TICK = 0.02


@dataclass(frozen=True)
class EngineOptions:
    """How the engine behaves; every field has a production default."""

    sender: str  #: envelope sender (MAIL FROM), a bare address
    resend_uncertain: bool = (
        True  #: policy for uncertain messages: resend (same Message-ID) or hold
    )
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease_seconds: float = 60.0
    flush_interval: float = 0.05  #: outcomes are written at least this often ...
    flush_size: int = 100  #: ... or when this many are buffered
    progress_interval: float = 0.25
    poll_interval: float = 0.5  #: how often the campaign's state is re-read (pause/cancel)
    idle_close_seconds: float = 5.0  #: a connection with nothing to do is closed after this
    max_connect_failures: int = 5  #: consecutive failed opens with nothing open = route failure
    ceilings: Limits | None = None  #: configured hard limits (never exceeded)
    rules: Sequence[Rule] = DEFAULT_RULES
    pacer: PacerConfig = field(default_factory=PacerConfig)  #: pacing knobs (tests shorten waits)
    seed: int | None = None  #: for retry jitter (tests)


class Engine:
    """Sends one campaign through one route until there is nothing left to do or it is stopped."""

    def __init__(
        self,
        store: Store,
        campaign: CampaignRecord,
        route: Route,
        render: Callable[[Mapping[str, str]], bytes],
        options: EngineOptions,
        *,
        observers: Iterable[Observer] = (),
    ) -> None:
        self.store = store
        self.campaign = campaign
        self.route = route
        self.render = render
        self.options = options
        self.events = Emitter(observers)
        self.worker = worker_identity()
        learned = store.load_route_limits(route.key)
        self.pacer = Pacer(
            time.monotonic,
            learned=Limits.from_dict(learned) if learned else None,
            ceilings=options.ceilings,
            config=options.pacer,
        )
        self._rng = random.Random(options.seed)
        self._history = RouteHistory()
        self._queue: collections.deque[ClaimedMessage] = collections.deque()
        self._work = asyncio.Event()
        self._outcomes: list[Outcome] = []
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._open = 0
        self._connecting = 0  #: connections being opened (greeting, EHLO, TLS, AUTH)
        self._in_flight = 0
        self._sending: set[int] = set()
        self._connections_made = 0
        self._connect_failures = 0
        self._connect_after = 0.0
        self._stop_reason: str | None = None
        self._final_state: CampaignState | None = None
        self._route_error: str | None = None
        self._limits_said = ""
        self._quota_text = ""

    def __repr__(self) -> str:
        return (
            f"<Engine campaign={self.campaign.id} open={self._open} in_flight={self._in_flight}"
            f" queued_here={len(self._queue)} {self.pacer!r}>"
        )

    # -- control -------------------------------------------------------------------------
    def stop(self, reason: str = "interrupted") -> None:
        """Stop: nothing new starts; in-flight messages finish and are recorded."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._final_state = CampaignState.PAUSED
        self._work.set()

    def flush(self) -> None:
        """Write the outcomes known so far (before a hard exit, so they are not lost)."""
        self._flush()

    # -- main loop -----------------------------------------------------------------------
    async def run(self) -> Report:
        """Send until done, paused, cancelled, stopped or the route fails; return the report."""
        cid = self.campaign.id
        started = time.time()
        self.store.recover(
            cid, now=started, resend=self.options.resend_uncertain, is_alive=is_alive
        )
        if self.campaign.state is CampaignState.CANCELLED:
            return self._report(started)
        self._set_state(CampaignState.RUNNING, None)
        self._tally = RunTally(self.store.stats(cid))
        self.events.emit(Event(EventKind.STARTED, cid, started, self._progress_data(started)))
        next_poll = next_flush = next_progress = next_heartbeat = next_idle_check = 0.0
        try:
            while self._stop_reason is None:
                now = time.monotonic()
                if now >= next_flush or len(self._outcomes) >= self.options.flush_size:
                    self._flush()
                    next_flush = now + self.options.flush_interval
                if now >= next_poll:
                    self._poll_state()
                    next_poll = now + self.options.poll_interval
                if self._stop_reason is not None:
                    break
                self._follow_quota()
                if self.campaign.state is CampaignState.RUNNING:
                    self._refill()
                    self._spawn_workers(now)
                    if not self._queue and not self._in_flight and now >= next_idle_check:
                        self._flush()
                        if self._finished_or_idle():
                            break
                        next_idle_check = now + self._idle_wait()
                if now >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = now + self.options.lease_seconds / 3
                if now >= next_progress:
                    self.events.emit(
                        Event(EventKind.PROGRESS, cid, time.time(), self._progress_data(started))
                    )
                    self._say_limits()
                    next_progress = now + self.options.progress_interval
                self._work.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), _TICK)
        finally:
            await self._drain()
        return self._finish(started)

    def _set_state(self, state: CampaignState, reason: str | None) -> None:
        if self.campaign.state is state and self.campaign.reason == reason:
            return
        self.campaign = self.store.set_campaign_state(self.campaign.id, state, reason)
        self.events.emit(
            Event(
                EventKind.STATE,
                self.campaign.id,
                time.time(),
                {"state": state.value, "reason": reason},
            )
        )

    def _poll_state(self) -> None:
        """Notice a pause or cancel made elsewhere (another CLI, the HTTP API)."""
        fresh = self.store.get_campaign(self.campaign.id)
        self.campaign = fresh
        if fresh.state in (CampaignState.PAUSED, CampaignState.CANCELLED):
            self._stop_reason = fresh.reason or f"{fresh.state.value} by user"
            self._final_state = fresh.state

    def _follow_quota(self) -> None:
        """While the pacer blocks the route (quota window) for a while, the campaign is
        ``waiting``; blocks shorter than :data:`_WAITING_AFTER` pass without a state change."""
        blocked = self.pacer.blocked_for()
        state = self.campaign.state
        if blocked >= _WAITING_AFTER and state is CampaignState.RUNNING:
            until = time.strftime("%H:%M:%S", time.localtime(time.time() + blocked))
            if self._quota_text:
                why = f"the server's sending quota is used up ({self._quota_text})"
            else:
                why = "the server asked us to wait (a retry hint, or no connection let in)"
            self._set_state(
                CampaignState.WAITING, f"{why}; waiting until about {until}, then continuing"
            )
            self._work.set()
        elif blocked <= 0 and state is CampaignState.WAITING:
            self._set_state(CampaignState.RUNNING, None)
            self._quota_text = ""

    def _refill(self) -> None:
        """Keep a few claimed messages ready beyond what the open connections are sending."""
        if self.pacer.blocked_for() > 0:
            return
        want = 2 * max(self.pacer.target_connections, 1) + 8 - len(self._queue)
        if want < max(4, self.pacer.target_connections):
            return
        claimed = self.store.claim(
            self.campaign.id,
            worker=self.worker,
            limit=want,
            lease_seconds=self.options.lease_seconds,
            now=time.time(),
        )
        if claimed:
            self._queue.extend(claimed)
            self._work.set()

    def _idle_wait(self) -> float:
        """Nothing claimable now: how long until it is worth looking again."""
        due = self.store.next_retry_at(self.campaign.id)
        if due is None:
            return 0.2
        return min(1.0, max(0.05, due - time.time()))

    def _finished_or_idle(self) -> bool:
        """True when nothing is left; when only deferred messages remain, keep waiting for them."""
        stats = self.store.stats(self.campaign.id)
        pending = stats.counts[M.QUEUED] + stats.counts[M.SENDING] + stats.counts[M.DEFERRED]
        if pending == 0:
            self._final_state = CampaignState.DONE
            self._stop_reason = "done"
            return True
        return False

    def _spawn_workers(self, now: float) -> None:
        for slot, task in list(self._workers.items()):
            if task.done():
                del self._workers[slot]
        if not self._queue or now < self._connect_after or self.pacer.blocked_for() > 0:
            return
        desired = min(self.pacer.target_connections, len(self._queue) + self._in_flight)
        slot = 0
        while len(self._workers) < desired:
            while slot in self._workers:
                slot += 1
            self._workers[slot] = asyncio.create_task(self._worker(slot), name=f"connection-{slot}")

    # -- workers -------------------------------------------------------------------------
    async def _worker(self, slot: int) -> None:
        conn: Connection | None = None
        try:
            while self._stop_reason is None:
                if slot >= self.pacer.target_connections or self.pacer.blocked_for() > 0:
                    return
                if not self._queue:
                    if not await self._wait_for_work():
                        return
                    continue
                if conn is None or not conn.alive:
                    if conn is not None:
                        conn = None
                        self._closed()
                    conn = await self._connect(slot)
                    if conn is None:
                        return
                    continue  # the world may have changed while connecting
                message = self._queue.popleft()
                delay = self.pacer.reserve()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._send(conn, message)
                cap = self.pacer.messages_per_connection
                if conn.alive and cap is not None and conn.messages >= cap:
                    await conn.close()
        finally:
            if conn is not None:
                await conn.close()
                self._closed()
            self._work.set()

    async def _wait_for_work(self) -> bool:
        """Wait for queued work; False when idle long enough that the connection should close."""
        deadline = time.monotonic() + self.options.idle_close_seconds
        while not self._queue and self._stop_reason is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(remaining, _TICK))
        return self._stop_reason is None

    async def _connect(self, slot: int) -> Connection | None:
        self._connections_made += 1
        self._connecting += 1
        try:
            conn = await Connection.open(self.route, self._connections_made)
        except ConnectFailed as failure:
            self._connecting -= 1
            # the others being opened got past TCP too: they count as working for the reading
            others = self._open + self._connecting
            result = classify(failure.reply, self.options.rules)
            verdict = self._history.interpret(failure.reply, result, open_connections=others)
            self._connect_failed(failure.reply, verdict)
            return None
        except BaseException:
            self._connecting -= 1
            raise
        self._connecting -= 1
        self._open += 1
        self._connect_failures = 0
        self.pacer.on_connected(self._open)
        mailmax = parse_limits_keyword(conn.extensions.get("_ehlo", "")).get("MAILMAX")
        if mailmax is not None:
            self.pacer.apply_server_limits(mailmax=mailmax)
        return conn

    def _closed(self) -> None:
        self._open -= 1
        self.pacer.on_closed(self._open)

    def _connect_failed(self, reply: Reply, verdict: Classification) -> None:
        self.pacer.observe(
            verdict.verdict,
            open_connections=self._open,
            backlog=bool(self._queue),
            retry_after=verdict.retry_after,
        )
        text = f"{reply.code or ''} {reply.text}".strip()
        if verdict.verdict is V.ROUTE_FAILURE:
            self._route_failed(f"{reply.phase.value}: {text}")
            return
        throttled = verdict.verdict in ROUTE_THROTTLES
        if throttled:
            self._tally.add("throttles")
            if self._open > 0:
                return  # the pacer now knows the ceiling; the open connections carry on
        self._connect_failures += 1
        backoff = min(30.0, 0.2 * 2 ** (self._connect_failures - 1))
        self._connect_after = time.monotonic() + backoff
        if (
            not throttled
            and self._open == 0
            and self._connect_failures >= self.options.max_connect_failures
        ):
            self._route_failed(
                f"cannot connect to {self.route.key} ({self._connect_failures} tries): {text}"
            )

    def _route_failed(self, reason: str) -> None:
        self._route_error = reason
        if self._stop_reason is None:
            self._stop_reason = reason
            self._final_state = CampaignState.PAUSED

    async def _send(self, conn: Connection, message: ClaimedMessage) -> None:
        self._in_flight += 1
        self._sending.add(message.id)
        try:
            try:
                payload = frame_payload(self.render(message.variables))
            except MailpacerError as exc:
                self._outcomes.append(
                    Outcome(message.id, M.FAILED, "render-error", None, None, str(exc), time.time())
                )
                self._tally.add("failed")
                return
            reply = await conn.send(self.options.sender, message.email, payload)
            self._apply(message, reply, self._classify(reply, message.id))
        finally:
            self._in_flight -= 1
            self._sending.discard(message.id)
            self._work.set()

    def _classify(self, reply: Reply, message: int) -> Classification:
        """The reply's verdict, read with the route's history (:mod:`mailpacer.core.context`)."""
        result = classify(reply, self.options.rules)
        return self._history.interpret(reply, result, open_connections=self._open, message=message)

    def _apply(self, message: ClaimedMessage, reply: Reply, result: Classification) -> None:
        """Record what the reply means for the message and tell the pacer."""
        verdict = result.verdict
        working = self._open
        if verdict is V.THROTTLE_CONNECTIONS and reply.phase not in _SETUP_PHASES:
            working -= 1  # refused inside a session: this connection is the one too many
        self.pacer.observe(
            verdict,
            open_connections=max(0, working),
            backlog=bool(self._queue),
            messages_on_connection=reply.messages_on_connection,
            retry_after=result.retry_after,
        )
        now = time.time()
        decisions = decide(
            reply,
            result,
            attempts=message.attempts,
            first_attempt_at=message.first_attempt_at,
            now=now,
            policy=self.options.retry,
            rng=self._rng,
            resend_uncertain=self.options.resend_uncertain,
        )
        for decision in decisions:
            self._outcomes.append(
                Outcome(
                    message_id=message.id,
                    state=decision.state,
                    verdict=decision.verdict,
                    code=reply.code if decision.verdict == verdict else None,
                    enhanced=result.enhanced if decision.verdict == verdict else None,
                    text=decision.text,
                    at=now,
                    retry_at=decision.retry_at,
                    count_attempt=decision.count_attempt,
                )
            )
        self._tally.add(decisions[0].state.value)
        if verdict is V.ACCEPTED:
            self._tally.accepted(time.monotonic())
        elif verdict in ROUTE_THROTTLES:
            self._tally.add("throttles")
            if verdict is V.QUOTA:
                self._quota_text = f"{reply.code} {reply.text}"
        elif verdict is V.ROUTE_FAILURE:
            self._route_failed(f"{reply.phase.value}: {reply.code or ''} {reply.text}".strip())
        if len(self._outcomes) >= self.options.flush_size:
            self._work.set()
        self.events.emit(
            Event(
                EventKind.OUTCOME,
                self.campaign.id,
                now,
                {
                    "email": message.email,
                    "verdict": verdict.value,
                    "code": reply.code,
                    "text": reply.text,
                },
            )
        )

    def _flush(self) -> None:
        if self._outcomes:
            skipped = self.store.record(self._outcomes, worker=self.worker)
            self._outcomes = []  # (only once written: a failed write keeps them for the next)
            if skipped:  # another process recovered these leases: its record stands
                log.warning(
                    "%d outcome(s) not recorded: another process recovered their messages",
                    len({o.message_id for o in skipped}),
                )

    def _heartbeat(self) -> None:
        ids = [m.id for m in self._queue] + list(self._sending)
        if ids:
            self.store.extend_leases(self.worker, ids, time.time() + self.options.lease_seconds)
        # another worker sharing the campaign may have died: its messages come back (not ours)
        self.store.recover(
            self.campaign.id,
            now=time.time(),
            resend=self.options.resend_uncertain,
            is_alive=lambda worker: worker == self.worker or is_alive(worker),
        )

    # -- stopping ------------------------------------------------------------------------
    async def _drain(self) -> None:
        """Let in-flight messages finish, give back what was claimed but not started, flush."""
        if self._stop_reason is None:
            self._stop_reason = "stopped"
            self._final_state = CampaignState.PAUSED
        self._work.set()
        if self._workers:
            await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        unstarted = [m.id for m in self._queue]
        self._queue.clear()
        self._flush()
        if unstarted:
            self.store.release(self.worker, unstarted)
        self.store.save_route_limits(self.route.key, self.pacer.limits.to_dict())

    def _finish(self, started: float) -> Report:
        state = self._final_state or CampaignState.PAUSED
        reason = self._route_error or (None if state is CampaignState.DONE else self._stop_reason)
        fresh = self.store.get_campaign(self.campaign.id)
        self.campaign = fresh
        if fresh.state in (CampaignState.PAUSED, CampaignState.CANCELLED):
            state = fresh.state  # a pause or cancel made elsewhere since the last poll wins
            reason = self._route_error or fresh.reason
        if state is CampaignState.CANCELLED:
            self.store.cancel_pending(self.campaign.id)
        if fresh.state is not state or (reason and fresh.reason != reason):
            self._set_state(state, reason)
        report = self._report(started)
        self.events.emit(Event(EventKind.FINISHED, self.campaign.id, time.time(), report.to_dict()))
        return report

    def _report(self, started: float) -> Report:
        return build_report(
            self.store,
            self.store.get_campaign(self.campaign.id),
            self.pacer.limits,
            seconds=time.time() - started,
            sent_this_run=self._tally.counts["sent"],
            throttles_this_run=self._tally.counts["throttles"],
            route_error=self._route_error,
        )

    # -- progress ------------------------------------------------------------------------
    def _progress_data(self, started: float) -> dict[str, Any]:
        return {
            **self._tally.progress(time.monotonic()),
            "connections": self._open,
            "target_connections": self.pacer.target_connections,
            "elapsed": time.time() - started,
            "state": self.campaign.state.value,
            "reason": self.campaign.reason,
            "limits": self.pacer.limits.describe(),
        }

    def _say_limits(self) -> None:
        said = self.pacer.limits.describe()
        if said != self._limits_said:
            self._limits_said = said
            self.events.emit(
                Event(
                    EventKind.LIMITS,
                    self.campaign.id,
                    time.time(),
                    {"limits": self.pacer.limits.to_dict(), "text": said},
                )
            )
