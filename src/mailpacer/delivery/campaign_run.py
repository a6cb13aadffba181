"""One campaign while it runs in this process: its claimed messages, the outcomes waiting to be
written, its counts, and why it stops.

A :class:`CampaignRun` is fed by the engine (claims) and drained by its route's connections
(:mod:`mailpacer.delivery.route_runtime`), which take messages from every campaign on the route.
A campaign spread over a group of routes is a feed of each: every route's connections take from
the same ready queue when they can send, so each route gets messages at the pace it takes them,
and a message requeued or deferred by one route may leave by any. One route failing only stops
the campaign when every route of its group has failed.
Every message it holds — ready, waiting for a rate slot, or on the wire — keeps its lease until
its outcome is written or it is given back.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mailpacer.config.campaign import CampaignSettings
from mailpacer.config.sender import envelope_address
from mailpacer.core.classify import Classification, Reply, Rule, Verdict, rules_with
from mailpacer.core.events import Emitter, Event, EventKind
from mailpacer.core.outcome import ROUTE_THROTTLES, decide
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.delivery.tally import RunTally
from mailpacer.store import CampaignRecord, ClaimedMessage, Outcome

__all__ = ["CampaignRun"]

V = Verdict
M = MessageState


class CampaignRun:
    """A campaign's share of this process's work; one event loop owns it."""

    def __init__(
        self,
        campaign: CampaignRecord,
        settings: CampaignSettings,
        render: Callable[[Mapping[str, str]], bytes],
        *,
        events: Emitter,
        mark_started: Callable[[list[int]], Awaitable[None]],
        seed: int | None = None,
    ) -> None:
        self.campaign = campaign
        self.settings = settings
        self.render = render
        self.events = events
        self.sender = envelope_address(settings.sender)
        self.rules: tuple[Rule, ...] = rules_with(settings.rules)
        self.priority = settings.priority
        self.rng = random.Random(seed)
        self.ready: collections.deque[ClaimedMessage] = collections.deque()
        self.active: dict[int, ClaimedMessage] = {}  #: taken by a connection, not yet written
        self.given_back: list[int] = []  #: taken but never sent (a stop came first)
        self.outcomes: list[Outcome] = []
        self.on_wire = 0  #: messages a connection holds right now (rate wait or transaction)
        self.tally: RunTally | None = None
        self.stop_reason: str | None = None
        self.route_error: str | None = None  #: set when the campaign stopped: no route works
        self.route_keys = settings.route_keys
        self.failed_routes: dict[str, str] = {}  #: route key → why it failed, in this run
        self.sent_by_route = collections.Counter[str]()  #: accepted in this run, per route
        self.quota_text = ""
        self.limits_said = ""  #: the learned limits as last told to observers
        self.deferred_text = ""  #: the last reply that deferred a message
        self.left_deferred = 0  #: deferred messages this run stopped without waiting for
        self.started = time.time()
        self.changed = asyncio.Event()  #: an outcome, a stop: the engine should look
        self.requeued = False  #: an outcome put a message back in the queue: claim again
        self._write_marks = mark_started
        self._marks: list[int] = []
        self._marked: set[int] = set()
        self._mark_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"<CampaignRun {self.campaign.id} ready={len(self.ready)} on_wire={self.on_wire}"
            f" unwritten={len(self.outcomes)} {'stopping' if self.stopping else 'running'}>"
        )

    # -- what connections ask ------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """Nothing new may start (paused, cancelled, interrupted, route failed)."""
        return self.stop_reason is not None

    def has_work(self) -> bool:
        """A connection could take a message from this campaign now."""
        return bool(self.ready) and not self.stopping and self.waiting_state_ok()

    def waiting_state_ok(self) -> bool:
        """Messages leave only while the campaign is running (not waiting, not paused)."""
        return self.campaign.state is CampaignState.RUNNING

    def take(self) -> ClaimedMessage | None:
        """The next message to send, now held by a connection."""
        if not self.has_work():
            return None
        message = self.ready.popleft()
        self.active[message.id] = message
        self.on_wire += 1
        return message

    async def mark_started(self, message_id: int) -> None:
        """Record, before its transaction starts, that ``message_id`` is going on the wire (a
        crash after this leaves it uncertain; before it, it was never sent). Connections that
        ask at once share one write: whoever holds the lock writes every mark waiting."""
        self._marks.append(message_id)
        async with self._mark_lock:
            if message_id not in self._marked:
                batch, self._marks = self._marks, []
                try:
                    await self._write_marks(batch)
                except BaseException:
                    self._marks[:0] = batch  # the next holder writes them again
                    raise
                self._marked.update(batch)
        self._marked.discard(message_id)

    def put_back(self, message: ClaimedMessage) -> None:
        """A taken message that was not sent (its start mark could not be stored): first in
        line again, still leased to this process."""
        self.active.pop(message.id, None)
        self.ready.appendleft(message)
        self.on_wire -= 1
        self.changed.set()

    def give_back(self, message: ClaimedMessage) -> None:
        """A taken message that will not be sent (the campaign stopped meanwhile)."""
        self.active.pop(message.id, None)
        self.given_back.append(message.id)
        self.on_wire -= 1
        self.changed.set()

    def stop(self, reason: str, *, route_error: bool = False) -> None:
        """Nothing new starts; what is on the wire finishes and is recorded."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if route_error and self.route_error is None:
            self.route_error = reason
        self.changed.set()

    def route_failed(self, key: str, why: str) -> None:
        """The route ``key`` failed (unreachable, refused our credentials, an internal error):
        its messages go to the others; with no route left the campaign stops with the reason."""
        if key in self.failed_routes:
            return
        self.failed_routes[key] = why
        if len(self.route_keys) == 1:
            self.stop(why, route_error=True)
        elif all(k in self.failed_routes for k in self.route_keys):
            said = "; ".join(f"{k}: {self.failed_routes[k]}" for k in self.route_keys)
            self.stop(f"every route of the group failed ({said})", route_error=True)
        self.changed.set()

    # -- outcomes ------------------------------------------------------------------------
    def render_failed(self, message: ClaimedMessage, error: Exception) -> None:
        """The message could not be made (a template error for this recipient): failed."""
        now = time.time()
        self.outcomes.append(
            Outcome(message.id, M.FAILED, "render-error", None, None, str(error), now)
        )
        self._count(M.FAILED.value)
        self._done_on_wire()

    def record(
        self,
        message: ClaimedMessage,
        reply: Reply,
        result: Classification,
        *,
        route_accepting: bool = False,
        route: str | None = None,
    ) -> None:
        """Buffer what the reply means for the message; count it; tell observers.
        ``route_accepting``: the route accepted other messages moments ago; ``route``: the key
        of the route that sent it."""
        verdict = result.verdict
        now = time.time()
        decisions = decide(
            reply,
            result,
            attempts=message.attempts,
            first_attempt_at=message.first_attempt_at,
            now=now,
            policy=self.settings.retry,
            rng=self.rng,
            resend_uncertain=self.settings.resend_uncertain,
            route_accepting=route_accepting,
        )
        for decision in decisions:
            own = decision.verdict == verdict
            self.outcomes.append(
                Outcome(
                    message_id=message.id,
                    state=decision.state,
                    verdict=decision.verdict,
                    code=reply.code if own else None,
                    enhanced=result.enhanced if own else None,
                    text=decision.text,
                    at=now,
                    retry_at=decision.retry_at,
                    count_attempt=decision.count_attempt,
                    route=route,
                )
            )
        final = decisions[-1].state
        if final is M.QUEUED:
            self.requeued = True
        elif final is M.DEFERRED:
            self.deferred_text = f"{reply.code or ''} {reply.text}".strip()
        self._count(decisions[0].state.value)
        if verdict is V.ACCEPTED and route is not None:
            self.sent_by_route[route] += 1
        if verdict is V.ACCEPTED and self.tally is not None:
            self.tally.accepted(time.monotonic())
        elif verdict in ROUTE_THROTTLES:
            self._count("throttles")
            if verdict is V.QUOTA:
                self.quota_text = f"{reply.code} {reply.text}"
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
                    "route": route,
                },
            )
        )
        self._done_on_wire()

    def throttled(self) -> None:
        """A throttle reply that belongs to no message (a refused connection)."""
        self._count("throttles")

    def take_outcomes(self) -> list[Outcome]:
        """The buffered outcomes, to be written (put them back with :meth:`unwritten`)."""
        batch, self.outcomes = self.outcomes, []
        return batch

    def unwritten(self, batch: list[Outcome]) -> None:
        """A write failed: keep the batch for the next one, in order."""
        self.outcomes[:0] = batch

    def written(self, batch: list[Outcome]) -> None:
        """The batch is in the store: its messages no longer need their leases."""
        for outcome in batch:
            self.active.pop(outcome.message_id, None)

    def _count(self, kind: str) -> None:
        if self.tally is not None:
            self.tally.add(kind)

    def _done_on_wire(self) -> None:
        self.on_wire -= 1
        self.changed.set()

    # -- what the engine shows -----------------------------------------------------------
    def leased_ids(self) -> list[int]:
        """Every message this run holds a lease on (ready, taken, or written not yet)."""
        return [m.id for m in self.ready] + list(self.active)

    def progress(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        """A progress event's data."""
        assert self.tally is not None
        return {
            **self.tally.progress(time.monotonic()),
            **extra,
            "state": self.campaign.state.value,
            "reason": self.campaign.reason,
        }
