"""Run every due campaign in this process, side by side, until told to stop (DESIGN §10).

``mailpacer serve`` and ``mailpacer worker`` share this loop. It looks at the store every
``poll`` seconds (or when :meth:`Daemon.wake` is called) and starts :meth:`Engine.run` for each
campaign that is ``queued``, ``running`` or ``waiting`` and not already running in this engine.
A campaign left ``running`` by a process that died is such a campaign: the engine recovers its
messages (the dead worker's leases) and continues it. Several processes may run one campaign at
once; claims are atomic, so they share its messages. A campaign that cannot be run (its stored
settings or template are unreadable) is paused with the reason, never retried in a hot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping

from mailpacer.compose import Composer, load_template
from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.errors import MailpacerError, StoreUnavailable
from mailpacer.core.states import CampaignState, StateConflict
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.report import Report
from mailpacer.delivery.runner import one_click_for, stored_settings
from mailpacer.store import CampaignRecord, Store

__all__ = ["DUE", "Daemon", "Runnable", "run_due", "runnable"]

log = logging.getLogger("mailpacer")
C = CampaignState

#: campaign states the daemon runs (``running``/``waiting``: continued after a crash)
DUE = frozenset({C.QUEUED, C.RUNNING, C.WAITING})

Render = Callable[[Mapping[str, str]], bytes]
#: what a stored campaign is sent with: its settings and its renderer (may raise)
Runnable = Callable[[CampaignRecord], tuple[CampaignSettings, Render]]


def runnable(record: CampaignRecord) -> tuple[CampaignSettings, Render]:
    """A stored campaign's settings (password read again) and its composer's ``render``."""
    settings = stored_settings(record)
    template = load_template(settings.template)
    composer = Composer(
        template,
        sender=settings.sender,
        campaign_key=record.key,
        base_dir=settings.recipients.resolve().parent,
        one_click=one_click_for(settings.unsubscribe_url, template, os.environ),
    )
    return settings, composer.render


class Daemon:
    """Starts an engine run for every due campaign; one per campaign in this process."""

    def __init__(
        self,
        store: Store,
        engine: Engine,
        *,
        poll: float = 1.0,
        runnable: Runnable = runnable,
        drain_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.engine = engine
        self.poll = poll
        self.runnable = runnable
        self.drain_seconds = drain_seconds
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.reports: dict[int, Report] = {}  #: each campaign's last report in this process
        #: held while a scan picks campaigns: a creator holds it while a new campaign is
        #: briefly ``queued`` without its messages (see the service's campaign creation)
        self.lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._ended: dict[int, float] = {}  #: when each campaign's last run ended (monotonic)

    def __repr__(self) -> str:
        return f"<Daemon running={sorted(self.tasks)} poll={self.poll}>"

    def wake(self) -> None:
        """Look at the store now (a campaign was created, resumed or retried)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Scan and start due campaigns until ``stop`` is set; then stop every run (in-flight
        messages finish and are recorded, within ``drain_seconds``)."""
        backoff = 0.0
        try:
            while not stop.is_set():
                try:
                    await self.scan()
                except StoreUnavailable as exc:  # runs keep what they hold; look again later
                    backoff = min(2 * backoff or self.poll, 30.0)
                    log.warning("%s; looking again in %.0f s", exc, backoff)
                else:
                    backoff = 0.0
                self._wake.clear()
                naps = asyncio.ensure_future(self._nap(backoff or self.poll))
                waiters = {asyncio.ensure_future(stop.wait()), naps}
                _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending:
                    waiter.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await self._drain()

    async def _drain(self) -> None:
        """Stop every run, also those starting right now, and wait for them (bounded)."""
        deadline = time.monotonic() + self.drain_seconds
        while self.tasks and time.monotonic() < deadline:
            self.engine.stop("the service stopped; it continues when started again")
            await asyncio.wait(list(self.tasks.values()), timeout=0.1)

    async def _nap(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def scan(self) -> list[int]:
        """Start a run for each due campaign not running here; returns the ids started."""
        started: list[int] = []
        async with self.lock:
            records = await self.engine.db.list_campaigns()
            now = time.monotonic()
            for record in records:
                if record.state not in DUE or record.id in self.tasks:
                    continue
                if record.id in self.engine.runs:
                    continue
                if now - self._ended.get(record.id, -float("inf")) < self.poll:
                    continue  # it just ended in a due state (stopped): not in a hot loop
                task = asyncio.create_task(self._run(record), name=f"campaign {record.id}")
                self.tasks[record.id] = task
                started.append(record.id)
        return started

    async def _run(self, record: CampaignRecord) -> None:
        cid = record.id
        try:
            settings, render = await asyncio.to_thread(self.runnable, record)
            self.reports[cid] = await self.engine.run(record, settings, render, start_from=DUE)
        except StoreUnavailable as exc:  # not the campaign's fault: the next scan starts it again
            log.warning("campaign %d stopped here: %s", cid, exc)
        except MailpacerError as exc:
            log.error("campaign %d cannot run: %s", cid, exc)
            await self._pause(cid, f"cannot run: {exc}")
        except Exception as exc:
            log.exception("campaign %d stopped by an internal error", cid)
            await self._pause(cid, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.tasks.pop(cid, None)
            self._ended[cid] = time.monotonic()

    async def _pause(self, cid: int, reason: str) -> None:
        with contextlib.suppress(StateConflict, MailpacerError):
            await self.engine.db.set_campaign_state(cid, C.PAUSED, reason, expected=DUE)

    def halt(self, campaign_id: int, reason: str) -> bool:
        """Stop one campaign's run at once (see :meth:`Engine.halt`)."""
        return self.engine.halt(campaign_id, reason)

    async def settle(self, campaign_id: int, limit: float = 30.0) -> bool:
        """Wait (at most ``limit`` s) until the campaign's run here has ended: its in-flight
        messages are recorded. True when nothing of it runs here any more."""
        task = self.tasks.get(campaign_id)
        if task is None:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await asyncio.shield(task)
        return task.done()


async def run_due(store: Store, engine: Engine, *, stop: asyncio.Event, poll: float = 1.0) -> None:
    """Run every due campaign until ``stop`` is set (``mailpacer worker``'s loop)."""
    await Daemon(store, engine, poll=poll).run(stop)
