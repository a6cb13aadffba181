"""The durable record of campaigns, messages, attempts, routes and events (DESIGN §6).

:func:`open_store` picks the implementation from a path or URL; everything else talks to the
:class:`Store` protocol.
"""

from __future__ import annotations

import re
from pathlib import Path

from mailpacer.errors import UsageError
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
    Store,
    is_throttle,
)
from mailpacer.store.sqlite import SqliteStore

__all__ = [
    "LEASE_EXPIRED",
    "RESEND",
    "UNCERTAIN_VERDICTS",
    "AttemptRecord",
    "CampaignRecord",
    "CampaignStats",
    "ClaimedMessage",
    "EventRecord",
    "MessageRecord",
    "NewMessage",
    "Outcome",
    "SqliteStore",
    "Store",
    "is_throttle",
    "open_store",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(url_or_path: str | Path) -> Store:
    """Open (creating on first use) the store at a file path or ``sqlite:///path`` URL.

    ``sqlite:///var/lib/mailpacer.db`` is the absolute path ``/var/lib/mailpacer.db``;
    ``postgresql://`` URLs are recognised but not supported yet.
    """
    if isinstance(url_or_path, Path):
        return SqliteStore(url_or_path.expanduser())
    text = url_or_path.strip()
    if not text:
        raise UsageError("the database path is empty; give a file path or sqlite:///path")
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
        raise UsageError(
            "PostgreSQL stores are not yet supported; use a SQLite file (a path or sqlite:///path)"
        )
    raise UsageError(f"unknown database URL scheme {scheme!r}; use a file path or sqlite:///path")
