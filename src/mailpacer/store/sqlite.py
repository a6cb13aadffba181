"""The embedded store: one SQLite file in WAL mode, created (with its folder) on first use.

Sync API over :mod:`sqlite3`; one connection guarded by a lock, so any thread may call it, one at a
time. Writes are ``BEGIN IMMEDIATE`` transactions, so several processes sharing the file never
claim the same message. The operations are :class:`~mailpacer.store.sqlstore.SqlStore`'s, over
``sql/queries.sql``; sqlite3 errors become :class:`~mailpacer.core.errors.StoreError` here
and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from mailpacer.core.errors import StoreError
from mailpacer.store.migrate import migrate, schema_version
from mailpacer.store.sql import queries
from mailpacer.store.sqlstore import SqlStore


class SqliteStore(SqlStore):
    """The :class:`~mailpacer.store.Store` on a SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self.busy_timeout = busy_timeout
        self._q = queries()
        self._lock = threading.RLock()
        with _errors(self.path, busy_timeout):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder for {self.path}: {exc}") from exc
            conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                migrate(conn, str(self.path))
                self.schema_version = schema_version(conn)
            except BaseException:
                conn.close()
                raise
        self._conn: sqlite3.Connection | None = conn

    def __repr__(self) -> str:
        closed = " closed" if self._conn is None else ""
        return f"<SqliteStore path={self.path} schema={self.schema_version}{closed}>"

    # -- plumbing ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock (autocommit: each statement reads on its own)."""
        with self._lock, _errors(self.path, self.busy_timeout):
            yield self._open_connection()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
        with self._lock, _errors(self.path, self.busy_timeout):
            conn = self._open_connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _open_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store {self.path} is closed")
        return self._conn

    def _array(self, values: Sequence[int | str]) -> str:
        return json.dumps(list(values))  # read with json_each

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with _errors(self.path, self.busy_timeout):
                    conn.close()


@contextlib.contextmanager
def _errors(path: Path, busy_timeout: float) -> Iterator[None]:
    """Translate sqlite3 errors (the only place that does) into :class:`StoreError`."""
    try:
        yield
    except sqlite3.Error as exc:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            message = f"{path} is not a mailpacer database (or it is damaged): {text}"
        elif "locked" in text or "busy" in text:
            message = f"{path} is busy: another process held it for more than {busy_timeout:g} s"
        elif "unable to open" in text:
            message = f"cannot open the database {path}: {text}"
        else:
            message = f"database {path}: {text}"
        raise StoreError(message) from exc
