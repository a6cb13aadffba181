"""The running service: its store connection, engine, daemon, event broker and templates.

Built by :func:`mailpacer.service.app.create_app`'s lifespan; the resources reach it as
``request.app.state.service``.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import Request

from mailpacer.delivery.daemon import Daemon
from mailpacer.delivery.engine import Engine
from mailpacer.service.broker import Broker
from mailpacer.service.config import ServiceConfig
from mailpacer.service.template_store import TemplateStore
from mailpacer.store import AsyncStore, Store, open_store

__all__ = ["Service", "service_of"]


class Service:
    """Everything one ``serve`` process holds."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.broker = Broker()
        self.templates = TemplateStore(config.data_dir / "templates")
        self.create_lock = asyncio.Lock()
        self.db: AsyncStore = AsyncStore.open(config.db)  #: the API's own connection
        self.engine_store: Store | None = None
        self.engine: Engine | None = None
        self.daemon: Daemon | None = None
        self._stop = asyncio.Event()
        self.closing = asyncio.Event()  #: set on shutdown: live streams end
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Service {self.config.db} {self.daemon!r}>"

    async def start(self) -> None:
        """Open the store (migrating it), then run the daemon unless API-only."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        await self.db.list_campaigns()  # opens (and migrates) now: a bad --db fails at start
        if not self.config.worker:
            return
        self.engine_store = await asyncio.to_thread(open_store, self.config.db)
        self.engine = Engine(self.engine_store, timing=self.config.timing, observers=[self.broker])
        self.daemon = Daemon(self.engine_store, self.engine, poll=self.config.poll)
        self._task = asyncio.create_task(self.daemon.run(self._stop), name="daemon")

    async def stop(self) -> None:
        """Stop every run (in-flight messages finish and are recorded), close the store."""
        self.closing.set()
        for listener in list(self.broker.listeners):
            listener.ready.set()
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self.engine is not None:
            await self.engine.close()
        if self.engine_store is not None:
            self.engine_store.close()
        await self.db.close()

    async def halt_and_settle(self, campaign_id: int, reason: str) -> bool:
        """Stop the campaign's run in this process now and wait for its in-flight messages
        (bounded); True when nothing of it runs here any more."""
        if self.daemon is None:
            return True
        self.daemon.halt(campaign_id, reason)
        return await self.daemon.settle(campaign_id, self.config.settle_seconds)


def service_of(request: Request) -> Service:
    """The service behind a request."""
    service: Service = request.app.state.service
    return service
