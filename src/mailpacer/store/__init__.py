"""The durable record of campaigns, messages, attempts, routes and events (DESIGN §6).

:func:`open_store` picks the implementation from a path or URL; everything else talks to the
:class:`Store` protocol. :class:`~mailpacer.store.threaded.AsyncStore` runs any of them in a
thread of its own for async code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mailpacer.core.errors import UsageError
from mailpacer.store.base import (
    LEASE_EXPIRED,
    RESEND,
    UNCERTAIN_VERDICTS,
    AttemptRecord,
    CampaignRecord,
    CampaignStats,
    ClaimedMessage,
    EventRecord,
    MessageRecord,
    NewMessage,
    Outcome,
    Recovery,
    Store,
    SuppressionRecord,
    is_hard_bounce,
    is_throttle,
)
from mailpacer.store.memory import MemoryStore
from mailpacer.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from mailpacer.store.postgres import PostgresStore
    from mailpacer.store.threaded import AsyncStore

__all__ = [
    "LEASE_EXPIRED",
    "RESEND",
    "UNCERTAIN_VERDICTS",
    "AsyncStore",
    "AttemptRecord",
    "CampaignRecord",
    "CampaignStats",
    "ClaimedMessage",
    "EventRecord",
    "MemoryStore",
    "MessageRecord",
    "NewMessage",
    "Outcome",
    "PostgresStore",
    "Recovery",
    "SqliteStore",
    "Store",
    "SuppressionRecord",
    "is_hard_bounce",
    "is_throttle",
    "open_store",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def __getattr__(name: str) -> object:
    """``PostgresStore`` is imported on first use: psycopg takes a fifth of a second to load;
    ``AsyncStore`` too (asyncio, for the CLI's quick commands that never use it)."""
    if name == "PostgresStore":
        from mailpacer.store.postgres import PostgresStore

        return PostgresStore
    if name == "AsyncStore":
        from mailpacer.store.threaded import AsyncStore

        return AsyncStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url_or_path: str | Path) -> Store:
    """Open (creating or migrating on first use) the store at a path or URL.

    A file path or ``sqlite:///path`` (``sqlite:///var/lib/mailpacer.db`` is the absolute path
    ``/var/lib/mailpacer.db``) opens a SQLite file; ``postgresql://user@host:5432/dbname`` (also
    ``postgres://`` and ``postgresql+psycopg://``) a PostgreSQL database, whose password comes
    from the URL, ``PGPASSWORD`` or ``~/.pgpass`` as libpq reads them. ``memory:`` is a new,
    empty :class:`MemoryStore` (nothing kept on disk: for tests and rehearsals).
    """
    if isinstance(url_or_path, Path):
        return SqliteStore(url_or_path.expanduser())
    text = url_or_path.strip()
    if not text:
        raise UsageError("the database path is empty; give a file path or sqlite:///path")
    if text.lower() in ("memory:", "memory://"):
        return MemoryStore()
    match = _SCHEME.match(text)
    if match is None:
        return SqliteStore(Path(text).expanduser())
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        rest = text[match.end() :]
        if not rest.startswith("/") or rest.strip("/") == "":
            raise UsageError(f"{text!r}: a SQLite URL names a file, e.g. sqlite:///path/to/file.db")
        return SqliteStore(Path("/" + rest.lstrip("/")))
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        from mailpacer.store.postgres import PostgresStore

        return PostgresStore("postgresql://" + text[match.end() :])
    raise UsageError(
        f"unknown database URL scheme {scheme!r};"
        " use a file path, sqlite:///path or postgresql://host/dbname"
    )
