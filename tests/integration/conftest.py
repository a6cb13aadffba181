"""Databases for the store tests: every store implementation, each test on a database of its own.

Memory: a new :class:`~mailpacer.store.MemoryStore`, reopened with ``connect()``. SQLite: a file
in ``tmp_path``. PostgreSQL: the database named by ``MAILPACER_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``), where each test gets a schema of its own, named
for this session and migrated by the store itself; the store is pointed at it with
``search_path`` in the URL, as a user would. When a test ends its schema is emptied (TRUNCATE,
identities restarted: as new) for the next test; all are dropped at the end of the session.
(Cloning a template database costs ~150 ms here, a new schema ~50 ms, emptying one 12 ms.)
A server that cannot be reached fails the PostgreSQL tests with a message saying so; they are
never skipped.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from mailpacer.store import MemoryStore, Store, open_store
from mailpacer.store.postgres import PostgresStore, describe

PG_URL = os.environ.get("MAILPACER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
#: the implementations that other processes can open too (``indirect`` params of ``backend``)
SHARED_BACKENDS = BACKENDS[1:]
#: a route's shared budget (migration 0004): emptied with the rest between tests
SHARED_TABLES = ("route_slots", "route_members", "route_pace")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the PostgreSQL server are marked ``postgres`` (``-m "not postgres"``)."""
    for item in items:
        if "pg_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def url_with_schema(base: str, schema: str) -> str:
    """``base`` (a URL or key=value DSN) as a ``postgresql://`` URL whose search_path is
    ``schema``: the store's tables are made and found there."""
    info = conninfo_to_dict(base)
    user = quote(str(info.pop("user", "")), safe="")
    password = info.pop("password", None)
    if password is not None:
        user += ":" + quote(str(password), safe="")
    host = quote(str(info.pop("host", "")), safe="")
    port = f":{info.pop('port')}" if "port" in info else ""
    dbname = quote(str(info.pop("dbname", "")), safe="")
    info["options"] = f"{info.get('options', '')} -csearch_path={schema}".strip()
    return f"postgresql://{user}{'@' if user else ''}{host}{port}/{dbname}?{urlencode(info)}"


class PgServer:
    """The test server: fresh schemas on the test database, migrated (or left empty)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.admin = psycopg.connect(
                url, autocommit=True, connect_timeout=5, options="-clock_timeout=10s"
            )
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        else:
            reason = ""
        if reason:  # failed outside the except block: the report shows this message alone
            pytest.fail(
                f"PostgreSQL is not reachable at {describe(url)}: {reason}\n"
                "Start it (`make test` does when pg_isready says it is down: pg_ctlcluster"
                " --skip-systemctl-redirect <version> main start) or set MAILPACER_TEST_PG"
                " to a database where this user may create schemas.",
                pytrace=False,
            )
        self.admin.execute("SET client_min_messages = warning")  # no "drop cascades to" notices
        self.prefix = f"mailpacer_t{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.numbers = itertools.count(1)
        self.made: set[str] = set()
        self.spare: list[str] = []  #: migrated schemas given back by finished tests, emptied

    def url_for(self, schema: str) -> str:
        """A URL of the test database with ``schema`` first on the search_path."""
        return url_with_schema(self.url, schema)

    def create(self, *, empty: bool = False) -> str:
        """A new schema, migrated by opening a store on it (unless ``empty``); returns its name."""
        name = f"{self.prefix}_{next(self.numbers)}"
        self.admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        self.made.add(name)
        if not empty:
            PostgresStore(self.url_for(name)).close()
        return name

    def checkout(self) -> str:
        """A migrated schema with empty tables: one a finished test gave back, else a new one."""
        return self.spare.pop() if self.spare else self.create()

    def checkin(self, name: str) -> None:
        """Take back a schema from :meth:`checkout`: emptied for the next test (or dropped)."""
        try:
            self.empty(name)
        except psycopg.Error:
            self.drop(name)
        else:
            self.spare.append(name)

    def empty(self, name: str) -> None:
        """Empty a migrated schema's tables, identities restarted: the same as a new one (the
        schema_version rows stay), in 12 ms instead of 50."""
        tables = [
            sql.Identifier(name, t) for t in ("campaigns", "routes", "events", *SHARED_TABLES)
        ]
        self.admin.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(tables))
        )

    def drop(self, name: str) -> None:
        """Drop a schema made by :meth:`create`, with everything in it."""
        self.admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
        self.made.discard(name)

    def close(self) -> None:
        """Drop what a test left and close the admin connection."""
        for name in sorted(self.made):
            self.drop(name)
        self.admin.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The PostgreSQL test server (fails, with the reason, when it cannot be reached)."""
    server = PgServer(PG_URL)
    yield server
    server.close()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh (new or emptied), migrated PostgreSQL schema, for this test only."""
    name = pg_server.checkout()
    yield pg_server.url_for(name)
    pg_server.checkin(name)


class Backend:
    """Opens stores on one database; ``open()`` again is a reopen (another process, a restart)."""

    def __init__(
        self,
        name: str,
        target: str | Path,
        empty: Callable[[], None],
        opener: Callable[[], Store] | None = None,
    ) -> None:
        self.name = name
        #: the file path (SQLite) or URL (PostgreSQL) given to open_store ("memory:": see opener)
        self.target = target
        self.opened: list[Store] = []
        self._empty = empty
        self._opener = opener or (lambda: open_store(self.target))

    def __repr__(self) -> str:
        return f"<Backend {self.name} {self.target}>"

    def open(self) -> Store:
        """A new store on this database (a new connection)."""
        store = self._opener()
        self.opened.append(store)
        return store

    def close(self) -> None:
        """Close every store opened here."""
        for store in self.opened:
            store.close()
        self.opened.clear()

    def reset(self) -> None:
        """Close the stores and empty the database, as new (for one test's many examples)."""
        self.close()
        self._empty()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """One fresh database per test, for each store implementation."""
    if request.param == "memory":
        memory = [MemoryStore()]  # reset() starts a new one: the old tables are dropped

        def fresh() -> None:
            memory[0] = MemoryStore()

        made = Backend("memory", "memory:", fresh, lambda: memory[0].connect())
    elif request.param == "sqlite":
        path = tmp_path / "data" / "mailpacer.db"
        made = Backend("sqlite", path, lambda: shutil.rmtree(path.parent, ignore_errors=True))
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        schema = server.checkout()
        made = Backend("postgres", server.url_for(schema), lambda: server.empty(schema))
    yield made
    made.close()
    if request.param == "postgres":
        server.checkin(schema)


@pytest.fixture
def store(backend: Backend) -> Store:
    """A fresh, empty store."""
    return backend.open()
