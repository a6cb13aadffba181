"""``mailpacer serve``: the HTTP API (and every due campaign) in one process (DESIGN §10)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import click
from fastapi import FastAPI

from mailpacer.config.file import find_config, load_config
from mailpacer.core.errors import UsageError
from mailpacer.delivery.runner import default_db
from mailpacer.service import ServiceConfig, create_app
from mailpacer.service.config import TOKEN_ENV
from mailpacer.store import open_store

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``100M``, ``512k``, ``1048576`` → bytes."""
    value = text.strip().lower().removesuffix("b")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)]
    if not number.isdigit() or int(number) < 1:
        raise UsageError(f"--upload-limit {text!r}: expected a size such as 100M or 512k")
    return int(number) * _UNITS[unit]


def data_dir_for(db: str) -> Path:
    """Uploaded lists and templates live beside a SQLite database, else in the user data dir."""
    if "://" not in db or db.lower().startswith("sqlite:///"):
        path = Path(db.removeprefix("sqlite://")).expanduser()
        return path.parent / f"{path.stem}-service"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailpacer" / "service"


@click.command("serve")
@click.option("--db", default=default_db, help="SQLite file or postgresql:// URL.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where uploaded lists and templates are kept (default: beside the database).",
)
@click.option("--config", type=click.Path(dir_okay=False), help="mailpacer.toml (its routes).")
@click.option("--upload-limit", default="100M", show_default=True, help="Largest request body.")
@click.option("--no-worker", is_flag=True, help="Serve the API only; workers run campaigns.")
def serve_command(
    db: str,
    host: str,
    port: int,
    data_dir: Path | None,
    config: str | None,
    upload_limit: str,
    no_worker: bool,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) and run every due campaign.

    Every request but /healthz needs `Authorization: Bearer $MAILPACER_API_TOKEN`; listening
    beyond 127.0.0.1 without that token is refused. Routes are those of mailpacer.toml."""
    path = find_config(config, os.environ, None)
    # the store opens (and migrates) here first: an unreachable database is one clear error
    # and exit code 5 (StoreError, cli.main), not a traceback from inside the server's startup
    open_store(db).close()
    settings = ServiceConfig(
        db=db,
        data_dir=data_dir or data_dir_for(db),
        token=os.environ.get(TOKEN_ENV) or None,
        host=host,
        port=port,
        upload_limit=parse_size(upload_limit),
        config=load_config(path) if path else None,
        worker=not no_worker,
    )
    app = create_app(settings)

    async def started(port: int) -> None:
        print(f"mailpacer serve: listening on http://{host}:{port}", file=sys.stderr)
        print(f"  database {db}; data {settings.data_dir}", file=sys.stderr, flush=True)

    if not asyncio.run(serve_app(app, host, port, started)):
        sys.exit(1)


async def serve_app(
    app: FastAPI, host: str, port: int, started: Callable[[int], Awaitable[None]]
) -> bool:
    """Run ``app`` on uvicorn until SIGINT/SIGTERM; ``started(port)`` once it listens. Live
    event streams (SSE: the dashboard, ``curl -N``) end when the shutdown begins, so an open
    browser never holds the shutdown up. False when it could not start."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn sets a bool
        await asyncio.sleep(0.05)
    if not server.started:
        await task
        return False
    await started(server.servers[0].sockets[0].getsockname()[1])
    while not server.should_exit and not task.done():  # noqa: ASYNC110 - set by its signal handler
        await asyncio.sleep(0.1)
    service = getattr(app.state, "service", None)
    if service is not None:  # uvicorn waits for open responses before the lifespan ends
        service.closing.set()
        for listener in list(service.broker.listeners):
            listener.ready.set()
    await task
    return True


COMMANDS = [serve_command]
