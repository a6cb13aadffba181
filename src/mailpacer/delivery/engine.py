"""The delivery engine (DESIGN §2): claim → pacer slot → render → send → classify → record.

One :class:`Engine` per process runs any number of campaigns side by side. Routes are shared:
campaigns on one server feed one :class:`~mailpacer.delivery.route_runtime.RouteRuntime`, whose
pacer and connections bind them together. A campaign spread over a group of routes feeds the
runtime of each; it waits only while every route waits and fails only when every route has
failed. For each campaign the engine claims messages when the scheduler says so, writes outcomes
in small batches, keeps leases alive, follows pause and cancel made elsewhere (every state
change is compare-and-set), and ends with a report. It only
does I/O: the decisions are :mod:`mailpacer.delivery.scheduler`'s and the pacer's. The store is
called from its own thread, so a database held by another process slows claiming, never the SMTP
sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from mailpacer.config.campaign import CampaignSettings, RouteEntry
from mailpacer.core.errors import StoreUnavailable, UsageError
from mailpacer.core.events import Emitter, Event, EventKind, Observer
from mailpacer.core.limits import Limits
from mailpacer.core.states import CampaignState, MessageState, StateConflict
from mailpacer.delivery.budget import StoreBudget
from mailpacer.delivery.campaign_run import CampaignRun
from mailpacer.delivery.lease import is_alive, worker_identity
from mailpacer.delivery.report import Report, build_report
from mailpacer.delivery.route_runtime import RouteRuntime
from mailpacer.delivery.scheduler import (
    STARTABLE,
    USER_STOPS,
    Timing,
    claim_size,
    final_state,
    next_look,
)
from mailpacer.delivery.tally import RunTally
from mailpacer.pacing.pacer import PacerConfig
from mailpacer.store import AsyncStore, CampaignRecord, Store

__all__ = ["Engine"]

log = logging.getLogger("mailpacer")
C = CampaignState
M = MessageState


class Engine:
    """Runs campaigns in this process; one route runtime per route, shared by its campaigns."""

    def __init__(
        self,
        store: Store,
        *,
        timing: Timing | None = None,
        pacer: PacerConfig | None = None,
        observers: Iterable[Observer] = (),
        seed: int | None = None,
        share_routes: bool = True,
    ) -> None:
        self.store = store
        #: share each route's budget (slots, pace, limits) with other processes on the store;
        #: False: this process is alone on its routes (nothing shared, as before)
        self.share_routes = share_routes
        self.db = AsyncStore(lambda: store, owns=False)
        self.timing = timing or Timing()
        self.pacer_config = pacer or PacerConfig()
        self.events = Emitter(observers)
        self.worker = worker_identity()
        self.routes: dict[str, RouteRuntime] = {}
        self.runs: dict[int, CampaignRun] = {}
        self._carriers: dict[int, list[RouteRuntime]] = {}  #: a running campaign's routes
        self._routes_lock = asyncio.Lock()
        self._seed = seed

    def __repr__(self) -> str:
        return f"<Engine campaigns={sorted(self.runs)} routes={sorted(self.routes)}>"

    # -- control -------------------------------------------------------------------------
    def stop(self, reason: str = "interrupted") -> None:
        """Stop every campaign: nothing new starts; in-flight messages finish and are recorded."""
        for run in self.runs.values():
            run.stop(reason)
        for route in self.routes.values():
            route.wake()

    def halt(self, campaign_id: int, reason: str) -> bool:
        """Stop one campaign at once (a pause or cancel acknowledged in this process): nothing
        new starts; in-flight messages finish and are recorded. False when it is not running
        here."""
        run = self.runs.get(campaign_id)
        if run is None:
            return False
        run.stop(reason)
        for route in self._carriers.get(campaign_id, ()):
            route.wake()
        return True

    def flush(self) -> None:
        """Write the outcomes known so far, from any thread (before a hard exit)."""
        for run in list(self.runs.values()):
            batch = run.take_outcomes()
            if batch:
                self.store.record(batch, worker=self.worker)

    async def close(self) -> None:
        """Release the engine's store thread (the store itself stays open)."""
        await self.db.close()

    # -- one campaign --------------------------------------------------------------------
    async def run(
        self,
        campaign: CampaignRecord,
        settings: CampaignSettings,
        render: Callable[[Mapping[str, str]], bytes],
        *,
        start_from: Collection[CampaignState] = STARTABLE,
    ) -> Report:
        """Send ``campaign`` until done, paused, cancelled, stopped or its route fails.

        ``start_from``: the states it may start from (a daemon that picks due campaigns passes
        queued/running/waiting, so a pause made after it looked wins)."""
        started = time.time()
        cid = campaign.id
        await self.db.recover(cid, now=started, resend=settings.resend_uncertain, is_alive=is_alive)
        run = CampaignRun(
            campaign,
            settings,
            render,
            events=self.events,
            mark_started=self._marker(),
            seed=self._seed,
        )
        run.started = started
        if cid in self.runs:
            raise UsageError(f"campaign {cid} is already running in this engine")
        run.campaign = await self.db.get_campaign(cid)
        if run.campaign.state is C.CANCELLED:
            return await self._report(run, started)
        try:
            run.campaign = await self.db.set_campaign_state(
                cid, C.RUNNING, None, expected=start_from
            )
        except StateConflict:  # paused, cancelled or finished meanwhile: report it as it is
            run.campaign = await self.db.get_campaign(cid)
            return await self._report(run, started)
        self._state_event(run)
        run.tally = RunTally(await self.db.stats(cid))
        self.events.emit(Event(EventKind.STARTED, cid, started, self._progress(run)))
        self.runs[cid] = run
        routes = await self._attach(run)
        try:
            done = await self._feed(run, routes)
        finally:
            run.stop(run.stop_reason or "stopped")
            for route in routes:
                route.wake()
            await self._drain(run, routes)
        return await self._finish(run, routes, started, done=done)

    async def _feed(self, run: CampaignRun, routes: list[RouteRuntime]) -> bool:
        """The campaign's bookkeeping loop; True when nothing is left to send."""
        t = self.timing
        now = time.monotonic
        claim_at = 0.0  #: when a claim may find something (monotonic); inf: wait for a change
        next_flush = next_poll = next_beat = next_progress = 0.0
        backoff = 0.0  #: the store is out of reach: wait this long before trying it again
        while not run.stopping:
            run.changed.clear()
            if backoff:  # in-flight messages go on; their outcomes wait in memory
                until = now() + backoff
                while not run.stopping and now() < until:
                    run.changed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(until - now()):
                            await run.changed.wait()
                if run.stopping:
                    break
            try:
                claim_at, next_flush, next_poll, next_beat = await self._bookkeep(
                    run, routes, claim_at, next_flush, next_poll, next_beat
                )
            except StoreUnavailable as exc:  # keep what is held; claim nothing until it is back
                backoff = min(2 * backoff or t.connect_backoff, t.connect_backoff_max)
                log.warning(
                    "campaign %d: %s; trying again in %.1f s", run.campaign.id, exc, backoff
                )
                continue
            if backoff:
                log.warning("campaign %d: the store is reachable again", run.campaign.id)
                backoff = 0.0
            if claim_at < 0:
                return True
            if run.stopping:
                break
            if now() >= next_progress and not (claim_at > now() and not run.ready):
                self.events.emit(
                    Event(EventKind.PROGRESS, run.campaign.id, time.time(), self._progress(run))
                )
                self._say_limits(run, routes)
                next_progress = now() + t.progress_interval
            wake = min(next_flush if run.outcomes else next_poll, next_poll, claim_at, next_beat)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.005, min(wake - now(), t.poll_interval))):
                    await run.changed.wait()
        return False

    async def _bookkeep(
        self,
        run: CampaignRun,
        routes: list[RouteRuntime],
        claim_at: float,
        next_flush: float,
        next_poll: float,
        next_beat: float,
    ) -> tuple[float, float, float, float]:
        """One pass of :meth:`_feed`'s store work: write, poll, claim, heartbeat. Returns the
        new times (``claim_at`` -1: nothing is left to send)."""
        t = self.timing
        now = time.monotonic
        if run.outcomes and (now() >= next_flush or len(run.outcomes) >= t.flush_size):
            await self._write(run)
            next_flush = now() + t.flush_interval
        # only deferred messages left (or none yet due): the idle tail, looked at rarely
        idle = claim_at > now() and not run.ready and run.on_wire == 0 and not run.outcomes
        if now() >= next_poll:
            await self._poll(run)
            next_poll = now() + (t.idle_poll_interval if idle else t.poll_interval)
            if run.stopping:
                return claim_at, next_flush, next_poll, next_beat
            held = run.ready or run.on_wire or run.outcomes or run.active
            waits = run.campaign.state is not C.RUNNING or _blocked_for(routes) > 0
            # no claim while the route waits; another process may finish the campaign meanwhile
            if not held and waits and await self._finished(run):
                return -1.0, next_flush, next_poll, next_beat
        await self._follow_block(run, routes)
        if run.requeued:
            run.requeued, claim_at = False, 0.0
        elif claim_at == math.inf and not (run.ready or run.on_wire or run.active):
            claim_at = 0.0  # the last outcomes are written: look again (finished?)
        if run.campaign.state is C.RUNNING and _blocked_for(routes) <= 0:
            connections = sum(r.target() for r in _working(routes))
            size = claim_size(ready=len(run.ready), connections=connections)
            if size and now() >= claim_at:
                claimed = await self.db.claim(
                    run.campaign.id,
                    worker=self.worker,
                    limit=size,
                    lease_seconds=t.lease_seconds,
                    now=time.time(),
                )
                run.ready.extend(claimed)
                for route in routes:
                    route.wake()
                if not claimed:
                    claim_at = await self._nothing_to_claim(run)
                    if claim_at < 0:
                        return claim_at, next_flush, next_poll, next_beat
        if now() >= next_beat:
            await self._heartbeat(run)
            next_beat = now() + t.lease_seconds / 3
        return claim_at, next_flush, next_poll, next_beat

    async def _finished(self, run: CampaignRun) -> bool:
        """Nothing is left to send: every message is sent, failed, uncertain or cancelled."""
        counts = (await self.db.stats(run.campaign.id)).counts
        return counts[M.QUEUED] + counts[M.SENDING] + counts[M.DEFERRED] == 0

    async def _nothing_to_claim(self, run: CampaignRun) -> float:
        """The claim came back empty: -1 when the campaign is finished, else when to look again
        (monotonic): when the next deferred message is due, or after an outcome."""
        if run.ready or run.on_wire or run.outcomes or run.active:
            return math.inf  # an outcome on its way will say (requeued or not)
        stats = await self.db.stats(run.campaign.id)
        counts = stats.counts
        if counts[M.QUEUED] + counts[M.SENDING] + counts[M.DEFERRED] == 0:
            return -1.0
        due = await self.db.next_retry_at(run.campaign.id)
        wait = next_look(now=time.time(), next_due=due, poll=float("inf"))
        only_deferred = counts[M.QUEUED] + counts[M.SENDING] == 0
        if only_deferred and due is not None:
            await self._deferred_tail(run, counts[M.DEFERRED], due, wait)
        if counts[M.SENDING]:  # another process holds some: they end in moments (or requeue)
            await self._recover_others(run)  # unless it died holding them
            wait = min(wait, self.timing.poll_interval)
        return time.monotonic() + wait

    async def _deferred_tail(
        self, run: CampaignRun, deferred: int, due: float, wait: float
    ) -> None:
        """Only deferred messages are left: say how many, why and when they are tried next
        (the campaign's reason); leave them for a later run when that is further away than
        :attr:`Timing.leave_deferred_after`."""
        when = time.strftime("%H:%M:%S", time.localtime(due))
        why = f" (last: {run.deferred_text})" if run.deferred_text else ""
        if wait > self.timing.leave_deferred_after:
            run.left_deferred = deferred
            run.stop(
                f"{deferred} message(s) deferred{why}, next try at {when}: run the same command"
                f" again (or `mailpacer resume {run.campaign.id}`) to send them then"
            )
            return
        reason = f"waiting for {deferred} deferred message(s){why}; next try at {when}"
        if run.campaign.reason != reason and run.campaign.state is C.RUNNING:
            try:
                run.campaign = await self.db.set_campaign_state(
                    run.campaign.id, C.RUNNING, reason, expected=(C.RUNNING,)
                )
                self._state_event(run)
            except StateConflict:
                await self._poll(run)

    async def _poll(self, run: CampaignRun) -> None:
        """Notice a pause or cancel made elsewhere (another CLI, the HTTP API)."""
        fresh = await self.db.get_campaign(run.campaign.id)
        run.campaign = fresh
        if fresh.state in USER_STOPS:
            run.stop(fresh.reason or f"{fresh.state.value} by user")

    async def _follow_block(self, run: CampaignRun, routes: list[RouteRuntime]) -> None:
        """While the route (every working route of a group) is blocked for a while (a quota
        window, a server's hint) the campaign is ``waiting``; the change is compare-and-set, so
        a pause made meanwhile wins."""
        blocked = _blocked_for(routes)
        state = run.campaign.state
        try:
            if blocked >= self.timing.waiting_after and state is C.RUNNING:
                until = time.strftime("%H:%M:%S", time.localtime(time.time() + blocked))
                if run.quota_text:
                    why = f"the server's sending quota is used up ({run.quota_text})"
                else:
                    why = "the server asked us to wait (a retry hint, or no connection let in)"
                idle = [m.id for m in run.ready]  # they would only sit leased meanwhile
                run.ready.clear()
                run.requeued = True  # claim again once the wait is over
                if idle:
                    await self.db.release(self.worker, idle)
                run.campaign = await self.db.set_campaign_state(
                    run.campaign.id,
                    C.WAITING,
                    f"{why}; waiting until about {until}, then continuing",
                    expected=(C.RUNNING,),
                )
                self._state_event(run)
            elif blocked <= 0 and state is C.WAITING:
                run.campaign = await self.db.set_campaign_state(
                    run.campaign.id, C.RUNNING, None, expected=(C.WAITING,)
                )
                run.quota_text = ""
                self._state_event(run)
        except StateConflict:
            await self._poll(run)

    async def _write(self, run: CampaignRun) -> None:
        batch = run.take_outcomes()
        if not batch:
            return
        try:
            skipped = await self.db.record(batch, worker=self.worker)
        except BaseException:
            run.unwritten(batch)  # kept for the next write (or the final flush)
            raise
        run.written(batch)
        if skipped:  # another process recovered these leases: its record stands
            log.warning(
                "%d outcome(s) not recorded: another process recovered their messages",
                len({o.message_id for o in skipped}),
            )

    async def _heartbeat(self, run: CampaignRun) -> None:
        ids = run.leased_ids()
        if ids:
            until = time.time() + self.timing.lease_seconds
            await self.db.extend_leases(self.worker, ids, until)
        await self._recover_others(run)

    async def _recover_others(self, run: CampaignRun) -> None:
        """Another process sharing the campaign may have died: its messages come back (not
        ours). A read, unless there is something to take back."""
        await self.db.recover(
            run.campaign.id,
            now=time.time(),
            resend=run.settings.resend_uncertain,
            is_alive=lambda worker: worker == self.worker or is_alive(worker),
        )

    # -- routes --------------------------------------------------------------------------
    async def _attach(self, run: CampaignRun) -> list[RouteRuntime]:
        """Attach ``run`` to the runtime of each of its routes, made on first use (or anew when
        the one there has failed). Under a lock, so two campaigns starting at once on one route
        share one runtime (one pacer, one pool)."""
        routes: list[RouteRuntime] = []
        async with self._routes_lock:
            for entry in run.settings.routes:
                key = entry.route.key
                route = self.routes.get(key)
                if route is None or route.failure is not None:
                    route = self.routes[key] = await self._runtime(entry)
                routes.append(route)
            self._carriers[run.campaign.id] = routes
            for route in routes:
                route.attach(run)
        return routes

    async def _runtime(self, entry: RouteEntry) -> RouteRuntime:
        """A new runtime for one route, starting from what was learned of it before."""
        key = entry.route.key
        learned = await self.db.load_route_limits(key)

        async def save(limits: dict[str, Any]) -> None:
            await self.db.save_route_limits(key, limits)

        return RouteRuntime(
            entry.route,
            learned=Limits.from_dict(learned) if learned else None,
            ceilings=entry.ceilings,
            pacer_config=self.pacer_config,
            timing=self.timing,
            save_limits=save,
            budget=StoreBudget(self.db, key, self.worker) if self.share_routes else None,
        )

    def _marker(self) -> Callable[[list[int]], Any]:
        async def mark(ids: list[int]) -> None:
            await self.db.mark_started(self.worker, ids, time.time())

        return mark

    # -- stopping ------------------------------------------------------------------------
    async def _drain(self, run: CampaignRun, routes: list[RouteRuntime]) -> None:
        """Let what is on the wire finish, give back what was never started, write it all."""
        while run.on_wire > 0 and all(route.error is None for route in routes):
            run.changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await run.changed.wait()
        for route in routes:
            route.detach(run)
        self.runs.pop(run.campaign.id, None)
        self._carriers.pop(run.campaign.id, None)
        for route in routes:
            if not route.feeds and self.routes.get(route.route.key) is route:
                del self.routes[route.route.key]
                with contextlib.suppress(Exception):  # an internal error is reported, not raised
                    await route.wait_closed()
        await self._write(run)
        unstarted = [m.id for m in run.ready] + run.given_back
        run.ready.clear()
        if unstarted:
            await self.db.release(self.worker, unstarted)
        stray = [i for i in run.active if i not in set(unstarted)]
        if stray:  # taken by a connection that died with an internal error: never answered
            await self.db.release(self.worker, stray)

    async def _finish(
        self, run: CampaignRun, routes: list[RouteRuntime], started: float, *, done: bool
    ) -> Report:
        fresh = await self.db.get_campaign(run.campaign.id)
        state = final_state(stored=fresh.state, done=done and run.route_error is None)
        if fresh.state in USER_STOPS:
            reason = run.route_error or fresh.reason
        elif state is C.DONE:
            reason = None
        else:
            reason = run.route_error or run.stop_reason
        if state is C.CANCELLED:
            await self.db.cancel_pending(run.campaign.id)
        if fresh.state is not state or (reason and fresh.reason != reason):
            try:
                run.campaign = await self.db.set_campaign_state(
                    run.campaign.id, state, reason, expected=(fresh.state,)
                )
            except StateConflict:  # changed again by someone else: theirs stands
                run.campaign = await self.db.get_campaign(run.campaign.id)
            self._state_event(run)
        else:
            run.campaign = fresh
        report = await self._report(run, started, routes=routes)
        self.events.emit(Event(EventKind.FINISHED, run.campaign.id, time.time(), report.to_dict()))
        return report

    async def _report(
        self, run: CampaignRun, started: float, *, routes: list[RouteRuntime] | None = None
    ) -> Report:
        learned = {route.route.key: route.pacer.limits for route in routes or ()}
        for key in run.route_keys:
            if key not in learned:
                stored = await self.db.load_route_limits(key)
                learned[key] = Limits.from_dict(stored) if stored else Limits()
        limits = learned[run.route_keys[0]]
        counts = run.tally.counts if run.tally is not None else {}
        campaign = await self.db.get_campaign(run.campaign.id)
        seconds = time.time() - started
        report: Report = await self.db.run(
            lambda store: build_report(
                store,
                campaign,
                limits,
                seconds=seconds,
                sent_this_run=counts.get("sent", 0),
                throttles_this_run=counts.get("throttles", 0),
                route_error=run.route_error,
                left_deferred=run.left_deferred,
                routes=[(key, learned[key], run.failed_routes.get(key)) for key in run.route_keys],
            )
        )
        return report

    # -- events --------------------------------------------------------------------------
    def _state_event(self, run: CampaignRun) -> None:
        self.events.emit(
            Event(
                EventKind.STATE,
                run.campaign.id,
                time.time(),
                {"state": run.campaign.state.value, "reason": run.campaign.reason},
            )
        )

    def _extra(self, run: CampaignRun) -> dict[str, Any]:
        routes = self._carriers.get(run.campaign.id, [])
        if not routes:
            return {"connections": 0, "target_connections": 0, "limits": ""}
        working = _working(routes)
        extra: dict[str, Any] = {
            "connections": sum(route.open for route in working),
            "target_connections": sum(route.target() for route in working),
            "limits": _describe_limits(routes),
        }
        if len(routes) > 1:  # a group: each route's share
            extra["routes"] = [
                {
                    "route": route.route.key,
                    "sent_this_run": run.sent_by_route[route.route.key],
                    "connections": route.open if route.failure is None else 0,
                    "limits": route.pacer.limits.describe(),
                    "failed": run.failed_routes.get(route.route.key),
                }
                for route in routes
            ]
        return extra

    def _progress(self, run: CampaignRun) -> dict[str, Any]:
        return run.progress({**self._extra(run), "elapsed": time.time() - run.started})

    def _say_limits(self, run: CampaignRun, routes: list[RouteRuntime]) -> None:
        """A LIMITS event when what the routes have learned reads differently (the first
        route's limits; a group's text and explanations name each route)."""
        said = _describe_limits(routes)
        if said != run.limits_said:
            run.limits_said = said
            first = routes[0].pacer
            explanations = list(first.explanations)
            if len(routes) > 1:
                explanations = [
                    f"{route.route.key}: {line}"
                    for route in routes
                    for line in route.pacer.explanations
                ]
            self.events.emit(
                Event(
                    EventKind.LIMITS,
                    run.campaign.id,
                    time.time(),
                    {
                        "limits": first.limits.to_dict(),
                        "text": said,
                        "explanations": explanations,
                    },
                )
            )


def _working(routes: list[RouteRuntime]) -> list[RouteRuntime]:
    """The routes that have not failed."""
    return [route for route in routes if route.failure is None]


def _blocked_for(routes: list[RouteRuntime]) -> float:
    """Seconds until a working route may send again (0.0: one may now)."""
    return min((route.pacer.blocked_for() for route in _working(routes)), default=0.0)


def _describe_limits(routes: list[RouteRuntime]) -> str:
    """What the routes have learned, in words; a group's names each route."""
    if len(routes) == 1:
        return routes[0].pacer.limits.describe()
    return "; ".join(
        f"{route.route.key}: {route.pacer.limits.describe() or 'nothing learned yet'}"
        for route in routes
    )
