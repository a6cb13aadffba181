"""Where a key is in a TOML file: ``tomllib`` gives no positions for valid TOML, so errors about a
value find its line by scanning the text for table headers and ``key =`` lines.

Paths are tuples: table and key names as strings, the element of an array of tables (``[[rules]]``)
as its 0-based index — ``("rules", 1, "verdict")`` is ``verdict`` in the second ``[[rules]]``.
"""

from __future__ import annotations

import re

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _key_path(text: str, pos: int) -> tuple[list[str], int] | None:
    """Parse a dotted key at ``pos``; return its parts and the position after it, or None."""
    parts: list[str] = []
    while True:
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] in "\"'":
            quote = text[pos]
            end = text.find(quote, pos + 1)
            if end < 0:
                return None
            parts.append(text[pos + 1 : end])
            pos = end + 1
        else:
            match = _BARE.match(text, pos)
            if match is None:
                return None
            parts.append(match.group())
            pos = match.end()
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ".":
            pos += 1
            continue
        return parts, pos


class KeyLines:
    """The 1-based line of every table header and ``key =`` line in a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        table: Path = ()
        counts: dict[tuple[str, ...], int] = {}
        fence: str | None = None  # inside a multi-line string opened by this fence
        for number, line in enumerate(text.splitlines(), start=1):
            if fence is not None:
                if line.count(fence) % 2 == 1:
                    fence = None
                continue
            stripped = line.lstrip()
            if stripped.startswith("[["):
                parsed = _key_path(stripped, 2)
                if parsed and stripped[parsed[1] :].startswith("]]"):
                    name = tuple(parsed[0])
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    table = (*name, index)
                    self.lines.setdefault(table, number)
                    self.lines.setdefault(name, number)
                continue
            if stripped.startswith("["):
                parsed = _key_path(stripped, 1)
                if parsed and stripped[parsed[1] :].startswith("]"):
                    table = tuple(parsed[0])
                    for depth in range(1, len(table) + 1):
                        self.lines.setdefault(table[:depth], number)
                continue
            parsed = _key_path(line, 0)
            if parsed and line[parsed[1] :].startswith("="):
                key = (*table, *parsed[0])
                for depth in range(len(table) + 1, len(key) + 1):
                    self.lines.setdefault(key[:depth], number)
                rest = line[parsed[1] + 1 :]
                for candidate in ('"""', "'''"):
                    if rest.count(candidate) % 2 == 1:
                        fence = candidate
                        break

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, else of its nearest enclosing key or table (inline tables)."""
        for depth in range(len(path), 0, -1):
            line = self.lines.get(path[:depth])
            if line is not None:
                return line
        return None


def dotted(path: Path) -> str:
    """``("rules", 1, "verdict")`` → ``rules[2].verdict`` (array elements counted from 1)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            name = part if _BARE.fullmatch(part) else f'"{part}"'
            out += f".{name}" if out else name
    return out
