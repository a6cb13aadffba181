"""The store's SQL, kept in ``.sql`` files: named queries and numbered migrations, per dialect.

``queries.sql`` holds blocks that start with ``-- name: <name>``; ``migrations/NNNN_name.sql`` are
applied in order of their number; ``schema.sql`` is what they build, for reading. SQLite's files
sit in this folder, PostgreSQL's in ``postgres/``, with the same query names. Each is read once
per process.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Literal

_NAME = re.compile(r"^-- name: ([a-z0-9_]+)[ \t]*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def parse_queries(text: str) -> dict[str, str]:
    """Split a named-query file into ``{name: sql}``; the text before the first name is a header."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries


def split_statements(script: str) -> list[str]:
    """Cut a script into complete statements (semicolons inside strings or triggers are kept)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if _has_code(statement):
                statements.append(statement)
            buffer = ""
    if _has_code(buffer.rstrip(";")):
        raise ValueError(f"incomplete SQL statement at the end of the script: {buffer.strip()!r}")
    return statements


def _has_code(text: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in text.splitlines())
    return any(line and line != ";" for line in lines)


def _folder(dialect: Dialect) -> Traversable:
    root = resources.files(__name__)
    return root if dialect == "sqlite" else root.joinpath(dialect)


@functools.cache
def queries(dialect: Dialect = "sqlite") -> dict[str, str]:
    """The named queries of the dialect's ``queries.sql``."""
    return parse_queries(_folder(dialect).joinpath("queries.sql").read_text(encoding="utf-8"))


@functools.cache
def migrations(dialect: Dialect = "sqlite") -> tuple[Migration, ...]:
    """Every migration of the dialect, in order of their numbers (unique, from 1; a gap is
    allowed, so migrations written on two branches, 0002 and 0003, merge in either order)."""
    folder = _folder(dialect).joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            number, name = match.groups()
            found.append(Migration(int(number), name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or (versions and versions[0] != 1):
        raise ValueError(f"migrations must be numbered from 1, each number once, found {versions}")
    return tuple(found)


def schema(dialect: Dialect = "sqlite") -> str:
    """``schema.sql``: the current schema in one file (what the migrations must build)."""
    return _folder(dialect).joinpath("schema.sql").read_text(encoding="utf-8")
