"""Schema migrations of the SQLite store: they rebuild ``schema.sql``, run once each, in one
transaction, and a file from a newer mailpacer is refused. Real files in ``tmp_path``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mailpacer.errors import StoreError, UsageError
from mailpacer.store import SqliteStore, open_store
from mailpacer.store.migrate import migrate, schema_version
from mailpacer.store.sql import (
    Migration,
    migrations,
    parse_queries,
    queries,
    schema,
    split_statements,
)


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
    assert first == [(m.version, m.name) for m in migrations()] == [(1, "initial")]
    SqliteStore(path).close()
    conn = connect(path)
    assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (len(migrations()),)
    assert migrate(conn, "m.db") == []
    assert schema_version(conn) == len(migrations())


def test_a_later_migration_is_applied_once_in_order(tmp_path: Path) -> None:
    """A file at version 1 gets only the new migration, once."""
    path = tmp_path / "m.db"
    SqliteStore(path).close()
    steps = (*migrations(), Migration(2, "add_notes", "ALTER TABLE campaigns ADD notes TEXT;"))
    conn = connect(path)
    assert migrate(conn, "m.db", steps) == [2]
    assert migrate(conn, "m.db", steps) == []
    assert "notes" in [c[1] for c in conn.execute("PRAGMA table_info(campaigns)")]
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (2,)


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """Pending migrations run in one transaction: a failure half-way applies none of them."""
    path = tmp_path / "m.db"
    SqliteStore(path).close()
    broken = "CREATE TABLE half (x INTEGER);\nINSERT INTO no_such_table VALUES (1);"
    steps = (
        *migrations(),
        Migration(2, "fine", "CREATE TABLE fine (x INTEGER);"),
        Migration(3, "broken", broken),
    )
    conn = connect(path)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(conn, "m.db", steps)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not {"fine", "half"} & tables
    assert schema_version(conn) == 1 and not conn.in_transaction


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """A file written by a newer mailpacer is not touched and the error says what to do."""
    path = tmp_path / "new.db"
    SqliteStore(path).close()
    conn = connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    conn.close()
    with pytest.raises(StoreError, match=r"new\.db has schema version 99.*up to version 1"):
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
        ("postgresql://user@db/mailpacer", "not yet supported"),
        ("postgres://db/mailpacer", "not yet supported"),
        ("mysql://db/x", "unknown database URL scheme 'mysql'"),
        ("sqlite://", "names a file"),
        ("  ", "empty"),
    ],
)
def test_open_store_refuses_what_it_cannot_open(url: str, message: str) -> None:
    """Unsupported or malformed database URLs are usage errors before anything is created."""
    with pytest.raises(UsageError, match=message):
        open_store(url)


def test_migrations_are_numbered_without_gaps() -> None:
    """Migration files are found, numbered 1..N, each with SQL in it."""
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert all(split_statements(m.sql) for m in found)


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
