"""Recipient lists as people keep them: CSV (any encoding, ``,`` ``;`` or tab separated), Excel
``.xlsx`` and JSON Lines, each read as a stream of records (lists of cell texts).

The kind is chosen by the file's extension (``.xlsx``; ``.jsonl`` / ``.ndjson``; anything else is
CSV). A reader only turns its format into records and its format's errors into
:class:`~mailpacer.core.errors.InputError` with a location (line and column, or row); what a
record means (header, rows, addresses) is :mod:`mailpacer.compose.recipients`' job, the same for
every kind.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mailpacer.core.errors import InputError, Problem, UsageError

#: separators tried when none is given, in order of preference on a tie
SNIFFED_DELIMITERS = (",", ";", "\t", "|")
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})


@dataclass(frozen=True)
class TableFormat:
    """How to read a CSV list; ignored for ``.xlsx`` and JSON Lines (their encoding is fixed)."""

    encoding: str | None = None  #: None: UTF-8, with or without BOM
    delimiter: str | None = None  #: None: sniffed from the header line

    def __post_init__(self) -> None:
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise UsageError(
                    f"--encoding {self.encoding!r}: unknown encoding"
                    " (e.g. utf-8, gbk, gb18030, big5, shift_jis, cp1252, latin-1)"
                ) from None
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise UsageError(
                f"--delimiter {self.delimiter!r}: one character, e.g. ',' ';' '|' or 'tab'"
            )


def parse_delimiter(text: str | None) -> str | None:
    """``--delimiter`` as given (``tab`` and ``\\t`` mean a tab); None stays None (sniff)."""
    if text is None:
        return None
    return "\t" if text.lower() in ("tab", "\\t") else text


class Table(Protocol):
    """A recipients list opened for reading, one record at a time."""

    #: short rows are padded with empty cells (a spreadsheet's row ends at its last value)
    pads: bool

    def next_record(self) -> list[str] | None:
        """The next record, or None at the end; format errors raise :class:`InputError`."""
        ...

    def ragged(self, row: int, cells: list[str], width: int) -> Problem:
        """The problem of a record whose cell count differs from the header's."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


def open_table(path: Path, fmt: TableFormat) -> Table:
    """The reader for ``path`` by its extension; a missing or unreadable file is an
    :class:`InputError` naming it."""
    suffix = path.suffix.lower()
    try:
        if suffix in XLSX_SUFFIXES:
            return XlsxTable(path)
        if suffix in JSONL_SUFFIXES:
            return JsonLinesTable(path)
        return CsvTable(path, fmt)
    except FileNotFoundError:
        raise InputError(Problem("recipients file not found", file=str(path))) from None
    except IsADirectoryError:
        raise InputError(Problem("is a folder, not a recipients file", file=str(path))) from None
    except OSError as exc:
        raise InputError(Problem(f"cannot open: {exc.strerror}", file=str(path))) from None


def ragged_problem(
    path: str, row: int, found: int, expected: int, separator: str = "comma"
) -> Problem:
    """The problem for a CSV row whose cell count differs from the header's."""
    return Problem(
        f"has {found} cells, the header has {expected} (a missing or extra {separator}?)",
        file=path,
        row=row,
    )


class CsvTable:
    """A CSV file in ``fmt.encoding`` (default UTF-8 with or without BOM), RFC 4180 quoting; the
    separator is ``fmt.delimiter`` or the most frequent of :data:`SNIFFED_DELIMITERS` in the
    header line."""

    pads = False

    def __init__(self, path: Path, fmt: TableFormat) -> None:
        self.path = path
        self.encoding = fmt.encoding or "utf-8-sig"
        self._file = path.open(encoding=self.encoding, newline="")
        try:
            self.delimiter = fmt.delimiter or self._sniff()
        except UnicodeDecodeError:
            self._file.close()
            raise InputError(decode_problem(path, self.encoding)) from None
        self._reader = csv.reader(self._file, delimiter=self.delimiter, strict=True)

    def _sniff(self) -> str:
        first = self._file.readline()
        self._file.seek(0)
        counts = {d: first.count(d) for d in SNIFFED_DELIMITERS}
        best = max(SNIFFED_DELIMITERS, key=lambda d: counts[d])  # first wins a tie
        return best if counts[best] else ","

    def next_record(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise InputError(decode_problem(self.path, self.encoding)) from None
        except csv.Error as exc:
            raise InputError(
                Problem(f"CSV syntax error: {exc}", file=str(self.path), line=self._reader.line_num)
            ) from None

    def ragged(self, row: int, cells: list[str], width: int) -> Problem:
        names = {",": "comma", ";": "semicolon", "\t": "tab"}
        separator = names.get(self.delimiter, repr(self.delimiter))
        return ragged_problem(str(self.path), row, len(cells), width, separator)

    def close(self) -> None:
        self._file.close()


def decode_problem(path: Path, encoding: str) -> Problem:
    """Locate the first byte sequence that is not ``encoding`` (line and column) for the error;
    a UTF-8 file that decodes as GB18030 gets a hint."""
    utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    name = "UTF-8" if utf8 else encoding
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as raw:
        for number, line in enumerate(raw, 1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as exc:
                hint = ""
                if utf8:
                    try:
                        line.decode("gb18030")
                        hint = (
                            "; it looks like GBK/GB18030 (Chinese Excel): give --encoding gbk"
                            " or save it as 'CSV UTF-8'"
                        )
                    except UnicodeDecodeError:
                        hint = "; give its encoding with --encoding (e.g. cp1252)"
                return Problem(
                    f"not {name}: byte 0x{line[exc.start]:02x} cannot be decoded{hint}",
                    file=str(path),
                    line=number,
                    column=exc.start + 1,
                )
    return Problem(f"not {name} text", file=str(path))


def cell_text(value: object) -> str:
    """A spreadsheet or JSON value as the text a template sees: whole numbers without ``.0``,
    dates as ``2026-06-10``, empty cells and ``null`` as ``""``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


class XlsxTable:
    """The first worksheet of an Excel workbook; each sheet row is a record (values, not
    formulas). Data row N is sheet row N + 1."""

    pads = True

    def __init__(self, path: Path) -> None:
        import openpyxl  # loaded only for workbooks (a fifth of a second)
        from openpyxl.utils.exceptions import InvalidFileException

        self.path = path
        with path.open("rb") as probe:  # a missing file is FileNotFoundError, as for CSV
            probe.read(1)
        try:
            self._book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError) as exc:
            raise InputError(
                Problem(f"not an Excel .xlsx workbook ({exc})", file=str(path))
            ) from None
        sheet = self._book.worksheets[0]
        self._rows = sheet.iter_rows(values_only=True)

    def next_record(self) -> list[str] | None:
        values = next(self._rows, None)
        if values is None:
            return None
        cells = [cell_text(v) for v in values]
        while cells and not cells[-1].strip():
            cells.pop()
        return cells

    def ragged(self, row: int, cells: list[str], width: int) -> Problem:
        return Problem(
            f"has values in {len(cells)} columns, the header names {width}"
            " (a value beyond the last named column?)",
            file=str(self.path),
            row=row,
        )

    def close(self) -> None:
        self._book.close()


class JsonLinesTable:
    """One JSON object per line; the first object's keys are the header (and it is data row 1),
    a later object's missing keys are empty cells. Data row N is line N (blank lines count)."""

    pads = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: io.TextIOWrapper = path.open(encoding="utf-8-sig")
        self._keys: list[str] | None = None
        self._pending: list[str] | None = None
        self._line = 0

    def next_record(self) -> list[str] | None:
        if self._pending is not None:
            record, self._pending = self._pending, None
            return record
        try:
            text = self._file.readline()
        except UnicodeDecodeError:
            raise InputError(decode_problem(self.path, "utf-8-sig")) from None
        if not text:
            return None
        self._line += 1
        if not text.strip():
            return []
        file, line = str(self.path), self._line
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            message = f"JSON syntax error: {exc.msg}"
            raise InputError(Problem(message, file=file, line=line, column=exc.colno)) from None
        if not isinstance(value, dict):
            raise InputError(Problem("expected one JSON object per line", file=file, line=line))
        for key, item in value.items():
            if isinstance(item, dict | list):
                kind = type(item).__name__
                message = f"key {key!r}: expected text, a number or null, not a JSON {kind}"
                raise InputError(Problem(message, file=file, line=line))
        if self._keys is None:  # the header, and then (as the next record) data row 1
            self._keys = [str(k) for k in value]
            self._pending = [cell_text(v) for v in value.values()]
            return list(self._keys)
        cells = [cell_text(value.get(k)) for k in self._keys]
        return cells + [str(k) for k in value if k not in self._keys]

    def ragged(self, row: int, cells: list[str], width: int) -> Problem:
        extra = ", ".join(repr(k) for k in cells[width:])
        return Problem(
            f"has keys the first line does not have: {extra} (the first line's keys are the"
            " columns)",
            file=str(self.path),
            row=row,
        )

    def close(self) -> None:
        self._file.close()
