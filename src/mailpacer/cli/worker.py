"""``mailpacer worker``: run every due campaign of a shared store, no HTTP (DESIGN §10, issue #13).

Any number of workers, on any machines, may run against one PostgreSQL database (beside a
``mailpacer serve --no-worker`` for the API): claims are atomic and a route's budget is shared
through the store, so together they never exceed what the server allows. The first SIGINT or
SIGTERM drains (in-flight messages finish and are recorded, nothing new starts); a second one
quits at once (the messages then in flight are recovered as uncertain by the next run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

import click

from mailpacer.core.events import Event, EventKind
from mailpacer.delivery.daemon import Daemon
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.runner import default_db
from mailpacer.store import Store, open_store

__all__ = ["worker_command"]

log = logging.getLogger("mailpacer")


class _Log:
    """An observer that logs what a worker runs: starts, state changes and finishes."""

    def __call__(self, event: Event) -> None:
        data: dict[str, Any] = dict(event.data)
        if event.kind is EventKind.STARTED:
            log.info("campaign %d: started here", event.campaign_id)
        elif event.kind is EventKind.STATE:
            reason = f" ({data['reason']})" if data.get("reason") else ""
            log.info("campaign %d: %s%s", event.campaign_id, data.get("state"), reason)
        elif event.kind is EventKind.FINISHED:
            log.info(
                "campaign %d: run ended here, %s; sent %s this run",
                event.campaign_id,
                data.get("state"),
                data.get("sent_this_run", "?"),
            )


@click.command("worker")
@click.option(
    "--db",
    default=default_db,
    show_default="$MAILPACER_DB",
    help="The shared store: a postgresql:// URL (a SQLite file works for one machine).",
)
@click.option(
    "--poll",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 60),
    help="Seconds between looks for due campaigns.",
)
@click.option(
    "--drain-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="On the first SIGINT/SIGTERM, how long in-flight messages may take to finish.",
)
def worker_command(db: str, poll: float, drain_seconds: float) -> None:
    """Run every due campaign in the store until SIGINT or SIGTERM (engine only, no HTTP).

    Start as many as you like against one PostgreSQL database; they share each route's
    limits. A first signal drains (in-flight messages finish and are recorded), a second quits
    at once."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s mailpacer worker %(process)d: %(message)s"
    )
    store = open_store(db)  # unreachable or unusable: StoreError, exit code 5 (cli.main)
    log.info("running due campaigns of %s (pid %d)", _where(db), os.getpid())
    try:
        asyncio.run(_work(store, poll=poll, drain_seconds=drain_seconds))
    finally:
        store.close()
    log.info("stopped")


def _where(db: str) -> str:
    """The database for the log: a PostgreSQL URL without its password."""
    if "://" in db and not db.lower().startswith("sqlite"):
        from mailpacer.store.postgres import describe

        return describe(db)
    return db


async def _work(store: Store, *, poll: float, drain_seconds: float) -> None:
    engine = Engine(store, observers=[_Log()])
    daemon = Daemon(store, engine, poll=poll, drain_seconds=drain_seconds)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("%s: draining (in-flight messages finish); again to quit at once", sig.name)
            stop.set()
            return
        log.warning("%s again: quit at once; in-flight messages are recovered later", sig.name)
        with contextlib.suppress(Exception):
            engine.flush()
            store.close()
        logging.shutdown()
        sys.stderr.flush()
        os._exit(128 + sig.value)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await daemon.run(stop)
    finally:
        await engine.close()


COMMANDS = [worker_command]
