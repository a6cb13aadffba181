"""Bring a database's schema up to date: numbered migrations, applied in order, once each.

All pending migrations run in one transaction, so a migration that fails leaves the database as
it was, and two processes opening a new database at the same moment cannot both apply them
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock). ``schema_version``
records what was applied; a database with a newer schema than this code knows is refused,
untouched.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from mailpacer.core.errors import StoreError
from mailpacer.store.sql import Migration, migrations, queries, split_statements

if TYPE_CHECKING:
    import psycopg

#: ``pg_advisory_xact_lock`` key held while migrating a PostgreSQL database ("mailpacr")
PG_MIGRATION_LOCK = 0x6D61696C70616372


def pending(applied: Collection[int], steps: Sequence[Migration], where: str) -> list[Migration]:
    """The steps not yet applied, in order (an older number missing below a newer one is
    applied too: migrations from two branches merge in either order); a database with a
    version newer than every step is refused."""
    latest = steps[-1].version if steps else 0
    current = max(applied, default=0)
    if current > latest:
        raise StoreError(
            f"{where} has schema version {current}, but this mailpacer only knows up to "
            f"version {latest}; use a newer mailpacer (or another --db)"
        )
    return [step for step in steps if step.version not in applied]


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to this file (0 for a new file)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if found is None:
        return 0
    return int(conn.execute(queries()["schema_version"]).fetchone()[0])


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    """Every migration applied to this file (none for a new file)."""
    if schema_version(conn) == 0:
        return set()
    return {int(row[0]) for row in conn.execute(queries()["applied_versions"])}


def migrate(
    conn: sqlite3.Connection, where: str, steps: Sequence[Migration] | None = None
) -> list[int]:
    """Apply the migrations this SQLite file lacks; return their versions.

    ``conn`` must be in autocommit mode (``isolation_level=None``); ``where`` names the file in
    errors.
    """
    steps = migrations() if steps is None else steps
    applied: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(queries()["create_schema_version"])
        for step in pending(applied_versions(conn), steps, where):
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


def pg_schema_version(conn: psycopg.Connection[Any]) -> int:
    """The highest migration applied to this PostgreSQL database (0 for a new one)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    version = conn.execute(queries("postgres")["schema_version"]).fetchone()
    return 0 if version is None else int(version[0])


def pg_applied_versions(conn: psycopg.Connection[Any]) -> set[int]:
    """Every migration applied to this PostgreSQL database (none for a new one)."""
    if pg_schema_version(conn) == 0:
        return set()
    return {int(row[0]) for row in conn.execute(queries("postgres")["applied_versions"])}


def migrate_postgres(
    conn: psycopg.Connection[Any], where: str, steps: Sequence[Migration] | None = None
) -> list[int]:
    """Apply the migrations this PostgreSQL database lacks; return their versions.

    ``conn`` must be in autocommit mode (the migrations get a transaction of their own). Each
    migration file is sent as one script, so it may hold functions with ``$$`` bodies.
    """
    steps = migrations("postgres") if steps is None else steps
    q = queries("postgres")
    applied: list[int] = []
    done = pg_applied_versions(conn)
    if steps and {s.version for s in steps} <= done and max(done) == steps[-1].version:
        return applied  # up to date: no lock, no transaction (every worker start)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_MIGRATION_LOCK,))
        conn.execute(q["create_schema_version"])
        for step in pending(pg_applied_versions(conn), steps, where):
            conn.execute(step.sql)  # one script: no parameters, so several statements are fine
            conn.execute(
                q["record_migration"],
                {"version": step.version, "name": step.name, "at": time.time()},
            )
            applied.append(step.version)
    return applied
