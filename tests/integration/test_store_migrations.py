"""Schema migrations of both stores: they rebuild ``schema.sql``, run once each, in one
transaction, and a database from a newer mailpacer is refused. Real SQLite files in ``tmp_path``;
real PostgreSQL schemas on the test server (conftest.py), each made empty for its test."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from mailpacer.core.errors import StoreError, UsageError
from mailpacer.store import SqliteStore, open_store
from mailpacer.store.migrate import migrate, migrate_postgres, pg_schema_version, schema_version
from mailpacer.store.postgres import PostgresStore
from mailpacer.store.sql import (
    Migration,
    migrations,
    parse_queries,
    queries,
    schema,
    split_statements,
)

if TYPE_CHECKING:
    from conftest import PgServer

#: the newest migration shipped; tests add theirs after it
LATEST = migrations()[-1].version
NAMES = [
    (1, "initial"),
    (2, "started_at"),
    (3, "suppressions"),
    (4, "route_budget"),
    (5, "attempt_route"),
]


def connect(path: Path) -> sqlite3.Connection:
    """A plain autocommit connection, as the store uses."""
    return sqlite3.connect(path, isolation_level=None)


def structure(conn: sqlite3.Connection) -> dict[str, Any]:
    """Tables with their columns, indexes (with columns and conditions) and foreign keys."""
    shape: dict[str, Any] = {}
    objects = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
        " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    for kind, name, table, sql in objects:
        if kind == "table":
            shape[name] = {
                "columns": conn.execute(f"PRAGMA table_xinfo({name})").fetchall(),
                "foreign_keys": conn.execute(f"PRAGMA foreign_key_list({name})").fetchall(),
                "checks": " ".join(sql.split()).count("CHECK"),
            }
        else:
            where = " ".join(sql.split()).partition(" WHERE ")[2] if sql else ""
            columns = conn.execute(f"PRAGMA index_xinfo({name})").fetchall()
            shape[f"{kind}:{name}"] = (table, columns, where)
    for table in [t for t in shape if ":" not in t]:
        unique = conn.execute(f"PRAGMA index_list({table})").fetchall()
        shape[table]["unique"] = sorted((u[2], u[3]) for u in unique)
    return shape


def test_migrations_rebuild_the_schema(tmp_path: Path) -> None:
    """Migrating an empty file gives exactly the schema described in schema.sql."""
    migrated = connect(tmp_path / "migrated.db")
    assert migrate(migrated, "migrated.db") == [m.version for m in migrations()]
    described = connect(tmp_path / "described.db")
    for statement in split_statements(schema()):
        described.execute(statement)
    assert structure(migrated) == structure(described)
    assert {"campaigns", "messages", "attempts", "routes", "events"} <= set(structure(migrated))


def test_version_is_recorded_and_nothing_runs_twice(tmp_path: Path) -> None:
    """The store records each applied migration; reopening applies none again."""
    path = tmp_path / "m.db"
    SqliteStore(path).close()
    first = connect(path).execute("SELECT version, name FROM schema_version").fetchall()
    assert first == [(m.version, m.name) for m in migrations()] == NAMES
    SqliteStore(path).close()
    conn = connect(path)
    assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (len(migrations()),)
    assert migrate(conn, "m.db") == []
    assert schema_version(conn) == migrations()[-1].version


def test_a_later_migration_is_applied_once_in_order(tmp_path: Path) -> None:
    """A file at the latest version gets only the new migration, once."""
    path = tmp_path / "m.db"
    SqliteStore(path).close()
    notes = Migration(LATEST + 1, "add_notes", "ALTER TABLE campaigns ADD notes TEXT;")
    steps = (*migrations(), notes)
    conn = connect(path)
    assert migrate(conn, "m.db", steps) == [LATEST + 1]
    assert migrate(conn, "m.db", steps) == []
    assert "notes" in [c[1] for c in conn.execute("PRAGMA table_info(campaigns)")]
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (LATEST + 1,)


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """Pending migrations run in one transaction: a failure half-way applies none of them."""
    path = tmp_path / "m.db"
    SqliteStore(path).close()
    broken = "CREATE TABLE half (x INTEGER);\nINSERT INTO no_such_table VALUES (1);"
    steps = (
        *migrations(),
        Migration(LATEST + 1, "fine", "CREATE TABLE fine (x INTEGER);"),
        Migration(LATEST + 2, "broken", broken),
    )
    conn = connect(path)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(conn, "m.db", steps)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not {"fine", "half"} & tables
    assert schema_version(conn) == LATEST and not conn.in_transaction


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """A file written by a newer mailpacer is not touched and the error says what to do."""
    path = tmp_path / "new.db"
    SqliteStore(path).close()
    conn = connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    conn.close()
    with pytest.raises(StoreError, match=rf"new\.db has schema version 99.*up to version {LATEST}"):
        open_store(path)
    assert schema_version(connect(path)) == 99


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    """Pointing --db at some other file gives a clear error naming it, and leaves it alone."""
    path = tmp_path / "recipients.csv"
    path.write_text("email,name\n" + "a@example.org,Ann\n" * 200)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"recipients\.csv is not a mailpacer database"):
        open_store(str(path))
    assert path.read_bytes() == before


def test_a_directory_cannot_be_the_database(tmp_path: Path) -> None:
    """A folder given as the database file is a StoreError that names it."""
    with pytest.raises(StoreError, match="cannot open the database"):
        open_store(tmp_path)


def test_open_store_creates_the_file_and_its_folders(tmp_path: Path) -> None:
    """A path or sqlite:/// URL is created on first use, parent folders included."""
    nested = tmp_path / "a" / "b" / "mail.db"
    open_store(f"sqlite://{nested}").close()
    assert nested.is_file()
    other = tmp_path / "c" / "other.db"
    open_store(str(other)).close()
    assert other.is_file()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/x", "unknown database URL scheme 'mysql'"),
        ("sqlite://", "names a file"),
        ("  ", "empty"),
    ],
)
def test_open_store_refuses_what_it_cannot_open(url: str, message: str) -> None:
    """Unsupported or malformed database URLs are usage errors before anything is created."""
    with pytest.raises(UsageError, match=message):
        open_store(url)


def test_migrations_are_numbered_from_one_each_once() -> None:
    """Migration files are found, numbered from 1 in increasing order (a gap is allowed: two
    branches add 0002 and 0003 independently), each with SQL in it."""
    found = migrations()
    versions = [m.version for m in found]
    assert versions[0] == 1 and versions == sorted(set(versions))
    assert 3 in versions and all(split_statements(m.sql) for m in found)


def test_a_missing_lower_migration_is_applied_after_a_higher_one(tmp_path: Path) -> None:
    """A file migrated by code that had 0001 and 0003 gets 0002 when code with all three opens
    it (branches merged in either order), and nothing twice."""
    path = tmp_path / "m.db"
    SqliteStore(path).close()  # 1 and 3 (and 2, once another branch's 0002 is merged)
    conn = connect(path)
    conn.execute("DELETE FROM schema_version WHERE version = 2")
    steps = sorted(
        {*migrations(), Migration(2, "other_branch", "CREATE TABLE other_branch (x INTEGER);")}
        - {m for m in migrations() if m.version == 2},
        key=lambda m: m.version,
    )
    assert migrate(conn, "m.db", steps) == [2]
    assert migrate(conn, "m.db", steps) == []
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions[:3] == [1, 2, 3]


class _AnyParams(dict[str, Any]):
    """Binds NULL to every named parameter, so each query can be compiled."""

    def __missing__(self, key: str) -> None:
        return None


def test_every_named_query_compiles_against_the_schema(tmp_path: Path) -> None:
    """Each query in queries.sql prepares against the migrated schema (no typos, no stale
    column names)."""
    conn = connect(tmp_path / "q.db")
    migrate(conn, "q.db")
    assert len(queries()) > 20
    for name, sql in queries().items():
        assert sql.rstrip().endswith(";"), name
        conn.execute(f"EXPLAIN {sql}", _AnyParams())


def test_query_file_parsing() -> None:
    """Named blocks are split on their marker; a header is ignored; a duplicate name fails."""
    text = "-- header\n\n-- name: one\nSELECT 1;\n\n-- name: two\n-- a comment\nSELECT 2;\n"
    assert parse_queries(text) == {"one": "SELECT 1;", "two": "-- a comment\nSELECT 2;"}
    with pytest.raises(ValueError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_statements_split_on_real_semicolons_only() -> None:
    """Semicolons inside strings and trigger bodies do not end a statement."""
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET x = 'c;d'; DELETE FROM t WHERE x = ';';
    END;
    """
    parts = split_statements(script)
    assert len(parts) == 2 and parts[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE t (x TEXT DEFAULT 'unterminated;")


def test_both_dialects_name_the_same_queries() -> None:
    """The PostgreSQL query file defines exactly the queries the SQLite one does (the shared
    store code asks for them by name)."""
    assert set(queries("postgres")) == set(queries("sqlite"))
    assert [m.version for m in migrations("postgres")] == [m.version for m in migrations()]


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def pg_empty(pg_server: PgServer) -> Iterator[tuple[str, str]]:
    """An empty schema on the test server: (its name, a URL whose search_path is it)."""
    name = pg_server.create(empty=True)
    yield name, pg_server.url_for(name)
    pg_server.drop(name)


def pg_connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """A plain autocommit connection, as the store uses."""
    return psycopg.connect(url, autocommit=True)


def pg_structure(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> dict[str, Any]:
    """Columns, constraints (with their definitions) and indexes of ``schema``'s tables, with
    the schema's name taken out of every definition."""

    def rows(query: str) -> list[tuple[Any, ...]]:
        found = conn.execute(query, {"schema": schema}).fetchall()
        return [tuple(str(v).replace(f"{schema}.", "") for v in row) for row in found]

    return {
        "columns": rows(
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable,"
            " column_default, is_identity, identity_generation FROM information_schema.columns"
            " WHERE table_schema = %(schema)s ORDER BY 1, 2"
        ),
        "constraints": rows(
            "SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid)"
            " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %(schema)s"
            " ORDER BY 1, 2"
        ),
        "indexes": rows(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = %(schema)s ORDER BY 1, 2"
        ),
    }


def test_pg_migrations_rebuild_the_schema(pg_server: PgServer) -> None:
    """Migrating an empty PostgreSQL schema gives exactly the schema described in
    postgres/schema.sql."""
    migrated, described = pg_server.create(empty=True), pg_server.create(empty=True)
    try:
        with pg_connect(pg_server.url_for(migrated)) as conn:
            assert migrate_postgres(conn, "m") == [m.version for m in migrations("postgres")]
            got = pg_structure(conn, migrated)
        with pg_connect(pg_server.url_for(described)) as conn:
            conn.execute(schema("postgres"))
            expected = pg_structure(conn, described)
    finally:
        pg_server.drop(migrated)
        pg_server.drop(described)
    assert got == expected
    tables = {row[0] for row in got["columns"]}
    assert {"schema_version", "campaigns", "messages", "attempts", "routes", "events"} <= tables
    assert "suppressions" in tables
    assert len(got["indexes"]) >= 10 and len(got["constraints"]) >= 15


def test_pg_version_is_recorded_and_nothing_runs_twice(pg_empty: tuple[str, str]) -> None:
    """Opening the store migrates once; reopening and migrating again apply nothing."""
    _, url = pg_empty
    store = PostgresStore(url)
    assert repr(store).endswith(f"schema={LATEST}>")
    store.close()
    PostgresStore(url).close()
    with pg_connect(url) as conn:
        found = conn.execute("SELECT version, name FROM schema_version").fetchall()
        assert found == [(m.version, m.name) for m in migrations("postgres")] == NAMES
        assert migrate_postgres(conn, "m") == []
        assert pg_schema_version(conn) == LATEST


def test_pg_a_later_migration_is_applied_once_in_order(pg_empty: tuple[str, str]) -> None:
    """A database at the latest version gets only the new migration, once."""
    name, url = pg_empty
    PostgresStore(url).close()
    steps = (
        *migrations("postgres"),
        Migration(LATEST + 1, "add_notes", "ALTER TABLE campaigns ADD notes text;\nSELECT 1;"),
    )
    with pg_connect(url) as conn:
        assert migrate_postgres(conn, "m", steps) == [LATEST + 1]
        assert migrate_postgres(conn, "m", steps) == []
        assert "notes" in {row[2] for row in pg_structure(conn, name)["columns"]}
        assert pg_schema_version(conn) == LATEST + 1


def test_pg_a_failing_migration_leaves_the_database_as_it_was(pg_empty: tuple[str, str]) -> None:
    """Pending migrations run in one transaction: a failure half-way applies none of them."""
    name, url = pg_empty
    PostgresStore(url).close()
    steps = (
        *migrations("postgres"),
        Migration(LATEST + 1, "fine", "CREATE TABLE fine (x integer);"),
        Migration(
            LATEST + 2,
            "broken",
            "CREATE TABLE half (x integer);\nINSERT INTO no_such_table VALUES (1);",
        ),
    )
    with pg_connect(url) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable, match="no_such_table"):
            migrate_postgres(conn, "m", steps)
        tables = {row[0] for row in pg_structure(conn, name)["columns"]}
        assert not {"fine", "half"} & tables
        assert pg_schema_version(conn) == LATEST and conn.info.transaction_status.name == "IDLE"


def test_pg_a_newer_schema_is_refused_with_a_clear_error(pg_empty: tuple[str, str]) -> None:
    """A database written by a newer mailpacer is not touched and the error says what to do."""
    _, url = pg_empty
    PostgresStore(url).close()
    with pg_connect(url) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    with pytest.raises(StoreError, match=rf"has schema version 99.*up to version {LATEST}"):
        open_store(url)
    with pg_connect(url) as conn:
        assert pg_schema_version(conn) == 99


def test_every_pg_named_query_compiles_against_the_schema(pg_database: str) -> None:
    """Each query in postgres/queries.sql is planned by the server against the migrated schema
    (no typos, no stale column names, parameter types all inferred)."""
    with pg_connect(pg_database) as conn:
        for name, sql in queries("postgres").items():
            assert sql.rstrip().endswith(";"), name
            assert "%" not in sql.replace("%(", ""), f"{name}: a bare % breaks psycopg"
            if name != "create_schema_version":  # DDL: EXPLAIN cannot plan it
                conn.execute(f"EXPLAIN {sql}", _AnyParams())


def test_open_store_opens_postgres_urls(pg_database: str) -> None:
    """postgresql://, postgres:// and postgresql+psycopg:// URLs all open the PostgreSQL store."""
    rest = pg_database.removeprefix("postgresql://")
    for scheme in ("postgresql", "postgres", "postgresql+psycopg", "PostgreSQL"):
        store = open_store(f"{scheme}://{rest}")
        assert isinstance(store, PostgresStore)
        assert store.list_campaigns() == []
        store.close()


def test_an_unreachable_server_is_a_clear_error_without_the_password(unused_port: int) -> None:
    """A server that does not answer is a StoreError naming it; the URL's password is left out."""
    url = f"postgresql://mailer:s3cret@127.0.0.1:{unused_port}/mail"
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL at") as caught:
        open_store(url)
    assert f"postgresql://mailer@127.0.0.1:{unused_port}/mail" in str(caught.value)
    assert "s3cret" not in str(caught.value)


# -- 0002: started_at -----------------------------------------------------------------------------

V1_DATA = [
    "INSERT INTO campaigns (id, key, name, state, route_key, created_at, updated_at)"
    " VALUES (1, 'k', 'n', 'running', 'r', 0, 0)",
    "INSERT INTO messages (id, campaign_id, row, email, state, worker, lease_until, updated_at)"
    " VALUES (1, 1, 1, 'a@x.org', 'sending', 'host:1:w', 100, 0)",
    "INSERT INTO messages (id, campaign_id, row, email, updated_at) VALUES (2, 1, 2, 'b@x.org', 0)",
]


def test_0002_upgrades_a_version_1_file_with_messages_in_flight(tmp_path: Path) -> None:
    """A file made by the previous mailpacer (schema 1) with a message in flight opens at the
    latest version: its data kept, started_at unknown (NULL: recovered as never started), and
    only a sending message may carry a started_at."""
    path = tmp_path / "v1.db"
    conn = connect(path)
    assert migrate(conn, "v1.db", migrations()[:1]) == [1]
    for statement in V1_DATA:
        conn.execute(statement)
    store = SqliteStore(path)
    listed = store.messages(1)
    assert [(m.email, m.state, m.started_at) for m in listed] == [
        ("a@x.org", "sending", None),
        ("b@x.org", "queued", None),
    ]
    store.mark_started("host:1:w", [1, 2], 50.0)
    assert [m.started_at for m in store.messages(1)] == [50.0, None]
    store.close()
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE messages SET started_at = 1 WHERE id = 2")


def test_pg_0002_upgrades_a_version_1_database_with_messages_in_flight(
    pg_empty: tuple[str, str],
) -> None:
    """The same upgrade on PostgreSQL: data kept, started_at NULL, only while sending."""
    _, url = pg_empty
    with pg_connect(url) as conn:
        assert migrate_postgres(conn, "m", migrations("postgres")[:1]) == [1]
        for statement in V1_DATA:
            conn.execute(statement)  # type: ignore[arg-type]  # literal SQL, no parameters
    store = PostgresStore(url)
    try:
        assert [(m.state, m.started_at) for m in store.messages(1)] == [
            ("sending", None),
            ("queued", None),
        ]
        store.mark_started("host:1:w", [1, 2], 50.0)
        assert [m.started_at for m in store.messages(1)] == [50.0, None]
    finally:
        store.close()
    with pg_connect(url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE messages SET started_at = 1 WHERE id = 2")
