"""Bring a SQLite file's schema up to date: numbered migrations, applied in order, once each.

All pending migrations run in one ``BEGIN IMMEDIATE`` transaction, so two processes opening a new
file at the same moment cannot both apply them, and a migration that fails leaves the file as it
was. ``schema_version`` records what was applied.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from mailpacer.errors import StoreError
from mailpacer.store.sql import Migration, migrations, queries, split_statements


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to this file (0 for a new file)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if found is None:
        return 0
    return int(conn.execute(queries()["schema_version"]).fetchone()[0])


def migrate(
    conn: sqlite3.Connection, where: str, steps: Sequence[Migration] | None = None
) -> list[int]:
    """Apply the migrations this file lacks; return their versions.

    ``conn`` must be in autocommit mode (``isolation_level=None``); ``where`` names the file in
    errors. A file with a newer schema than this code knows is refused, untouched.
    """
    steps = migrations() if steps is None else steps
    latest = steps[-1].version if steps else 0
    applied: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(queries()["create_schema_version"])
        current = schema_version(conn)
        if current > latest:
            raise StoreError(
                f"{where} has schema version {current}, but this mailpacer only knows up to "
                f"version {latest}; use a newer mailpacer (or another --db)"
            )
        for step in steps:
            if step.version <= current:
                continue
            for statement in split_statements(step.sql):
                conn.execute(statement)
            conn.execute(
                queries()["record_migration"],
                {"version": step.version, "name": step.name, "at": time.time()},
            )
            applied.append(step.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied
