"""The shared store: a PostgreSQL database that several workers, on several machines, send from.

Sync API over psycopg 3, like the SQLite store: one connection guarded by a lock, so any thread may
call it, one at a time; each write is one transaction. Claims lock the rows they take with
``FOR UPDATE SKIP LOCKED``, so workers claiming at the same moment get different messages without
waiting for each other, and share-lock their campaign's row, so a claim and a state change (pause,
cancel) never overlap; a claimed message is ``sending`` under its worker's lease until an outcome
is recorded or :meth:`recover` takes it back. The operations are
:class:`~mailpacer.store.sqlstore.SqlStore`'s, over ``sql/postgres/queries.sql``; the schema is
migrated on open (``sql/postgres/migrations``). psycopg errors
become :class:`~mailpacer.core.errors.StoreError` here and nowhere else; the password never
appears in them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import TextLoader

from mailpacer.core.errors import StoreError, StoreUnavailable
from mailpacer.store.migrate import migrate_postgres, pg_schema_version
from mailpacer.store.sql import queries
from mailpacer.store.sqlstore import SqlStore

__all__ = ["PostgresStore", "describe"]


class PostgresStore(SqlStore):
    """The :class:`~mailpacer.store.Store` on a PostgreSQL database (a libpq URL or DSN)."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.where = describe(url)
        self.connect_timeout = connect_timeout
        self._q = queries("postgres")
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        conn = self._connect()
        try:
            with _errors(self.where):
                migrate_postgres(conn, self.where)
                self.schema_version = pg_schema_version(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def __repr__(self) -> str:
        closed = " closed" if self._conn is None else ""
        return f"<PostgresStore {self.where} schema={self.schema_version}{closed}>"

    # -- plumbing ------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        """A new autocommit connection (transactions are explicit) that reads jsonb as text."""
        given = _conninfo(self.url)
        extra: dict[str, Any] = {}
        if "connect_timeout" not in given:
            extra["connect_timeout"] = max(1, round(self.connect_timeout))
        if "application_name" not in given:
            extra["application_name"] = "mailpacer"
        try:
            conn = psycopg.connect(self.url, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {self.where}: {_first_line(exc)}"
            ) from exc
        conn.adapters.register_loader("jsonb", TextLoader)
        return conn

    def _open_connection(self) -> psycopg.Connection[Any]:
        """The connection; a new one if the server dropped the last (a restart, a failover)."""
        if self._conn is None:
            raise StoreError(f"the store {self.where} is closed")
        if self._conn.broken:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[_Session]:
        """The connection, under the lock (autocommit: each statement reads on its own)."""
        with self._lock, _errors(self.where):
            yield _Session(self._open_connection())

    @contextlib.contextmanager
    def _write(self) -> Iterator[_Session]:
        """One READ COMMITTED transaction; the rows it changes are locked by its queries."""
        with self._lock, _errors(self.where):
            conn = self._open_connection()
            with conn.transaction():
                yield _Session(conn)

    @contextlib.contextmanager
    def _statement(self) -> Iterator[_Session]:
        """Autocommit: a single statement is its own transaction (one round trip, not three)."""
        with self._lock, _errors(self.where):
            yield _Session(self._open_connection())

    def _array(self, values: Sequence[int | str]) -> list[int | str]:
        return list(values)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                with _errors(self.where):
                    conn.close()


class _Session:
    """A connection as :class:`~mailpacer.store.sqlstore.Connection` (psycopg runs
    ``executemany`` on a cursor, pipelined, and sums its ``rowcount``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, query: str, params: Any = None, /) -> psycopg.Cursor[Any]:
        return self._conn.execute(query, params)

    def executemany(self, query: str, rows: Sequence[Mapping[str, Any]], /) -> psycopg.Cursor[Any]:
        cursor = self._conn.cursor()
        cursor.executemany(query, rows)
        return cursor


def describe(url: str) -> str:
    """``postgresql://user@host:port/dbname`` for people and errors: never the password."""
    info = _conninfo(url)
    user = f"{info['user']}@" if info.get("user") else ""
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname') or ''}"


def _conninfo(url: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(url)
    except psycopg.Error:  # its text may quote the URL, password included
        raise StoreError(
            "not a PostgreSQL URL libpq can read, e.g. postgresql://user@host:5432/dbname"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def _errors(where: str) -> Iterator[None]:
    """Translate psycopg errors (the only place that does) into :class:`StoreError`."""
    try:
        yield
    except psycopg.OperationalError as exc:  # the server went away, or refused us for now
        raise StoreUnavailable(f"PostgreSQL {where} failed: {_first_line(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"database {where}: {_first_line(exc)}") from exc
