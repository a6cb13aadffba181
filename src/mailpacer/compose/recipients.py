"""The recipients list, streamed: header checks, rows as :class:`Recipient`, address checks.

Format: a header row (for JSON Lines, the first object's keys); ``email`` required; ``name`` and
``language`` optional (these three are matched case-insensitively); every other column is a
template variable. CSV (UTF-8 with or without BOM unless an encoding is given, separator sniffed
or given, RFC 4180 quoting), Excel ``.xlsx`` or JSON Lines: :mod:`mailpacer.compose.tables`.
Row numbers are 1-based data rows (the header is row 0; blank lines count but are skipped), so
without multi-line cells row N is line N+1 of the file (sheet row N+1 of a workbook).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from mailpacer.compose.tables import TableFormat, open_table, ragged_problem
from mailpacer.core.errors import InputError, Problem

__all__ = [
    "AddressChecker",
    "Recipient",
    "RecipientsFile",
    "TableFormat",
    "iter_recipients",
    "make_recipient",
    "ragged_problem",
]

KNOWN_COLUMNS = ("email", "name", "language")
_FAST_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Recipient:
    """One data row: its number, address, and every column as a variable."""

    row: int  #: 1-based data row (the header is row 0)
    email: str
    variables: dict[str, str]


class RecipientsFile:
    """A recipients list opened for streaming (CSV, ``.xlsx`` or JSON Lines, see
    :mod:`mailpacer.compose.tables`); the header is read and checked on construction."""

    def __init__(self, path: Path, fmt: TableFormat | None = None) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.table = open_table(self.path, fmt or TableFormat())
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the file (also done at the end of :meth:`rows`)."""
        self.table.close()

    def __enter__(self) -> RecipientsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self) -> list[str] | None:
        """The next record; format errors are :class:`InputError` with their location."""
        return self.table.next_record()

    def ragged(self, row: int, cells: list[str]) -> Problem:
        """The problem of a row whose cell count differs from the header's."""
        return self.table.ragged(row, cells, len(self.header))

    def _read_header(self) -> list[str]:
        record = self._next()
        if record is None or not any(cell.strip() for cell in record):
            raise InputError(
                Problem(
                    "the file is empty; expected a header row with an 'email' column",
                    file=self.name,
                )
            )
        header = [cell.strip() for cell in record]
        header = [c.lower() if c.lower() in KNOWN_COLUMNS else c for c in header]
        problems = []
        if "email" not in header:
            problems.append(
                Problem(f"no 'email' column in the header {header!r}", file=self.name, line=1)
            )
        for i, column in enumerate(header, 1):
            if not column:
                problems.append(
                    Problem(f"column {i} has an empty name", file=self.name, line=1, column=i)
                )
            elif header.index(column) != i - 1:
                problems.append(
                    Problem(f"column {column!r} appears twice", file=self.name, line=1, column=i)
                )
        if problems:
            raise InputError(problems)
        return header

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """``(row, cells)`` for every non-blank record; ragged rows are passed through (a
        spreadsheet's short rows are padded with empty cells first)."""
        row = 0
        width = len(self.header)
        try:
            while (record := self._next()) is not None:
                row += 1
                if not record or (
                    len(record) == 1 and not record[0].strip() and len(self.header) > 1
                ):
                    continue  # blank line
                if self.table.pads and len(record) < width:
                    record = record + [""] * (width - len(record))
                yield row, record
        finally:
            self.close()


def make_recipient(header: list[str], row: int, cells: list[str]) -> Recipient:
    """The recipient of a row with as many cells as the header (known columns trimmed)."""
    variables = dict(zip(header, cells, strict=True))
    for key in KNOWN_COLUMNS:
        if key in variables:
            variables[key] = variables[key].strip()
    return Recipient(row, variables["email"], variables)


def iter_recipients(
    recipients_csv: Path,
    *,
    skip_rows: frozenset[int] = frozenset(),
    fmt: TableFormat | None = None,
) -> Iterator[Recipient]:
    """Stream the recipients, skipping ``skip_rows``; raises :class:`InputError` on a row that
    validation would have rejected structurally (ragged) or an unreadable file."""
    source = RecipientsFile(recipients_csv, fmt)
    header = source.header
    width = len(header)
    for row, cells in source.rows():
        if row in skip_rows:
            continue
        if len(cells) != width:
            raise InputError(source.ragged(row, cells))
        yield make_recipient(header, row, cells)


class AddressChecker:
    """Checks addresses with email-validator; the common ASCII case is checked once per domain
    (a strict local-part pattern plus a cached domain verdict), the rest address by address."""

    def __init__(self, *, check_dns: bool = False) -> None:
        self.check_dns = check_dns
        self._domains: dict[str, str | None] = {}  #: domain -> error text, None when fine

    def problem(self, address: str) -> str | None:
        """Why ``address`` cannot be used, or ``None`` when it is fine."""
        local, at, domain = address.rpartition("@")
        if at and len(address) <= 254 and len(local) <= 64 and _FAST_LOCAL.fullmatch(local):
            verdict = self._domains.get(domain, "?")
            if verdict != "?":
                return verdict
            verdict = self._domain_problem(domain)
            if len(self._domains) < _DOMAIN_CACHE_LIMIT:
                self._domains[domain] = verdict
            if verdict is not None:
                return verdict
        try:
            validate_email(address, check_deliverability=False, allow_smtputf8=False, strict=True)
        except EmailNotValidError as exc:
            return str(exc)
        if self.check_dns and at:
            return self._domain_problem(domain)
        return None

    def _domain_problem(self, domain: str) -> str | None:
        """email-validator's verdict on a domain (with DNS when asked), via a plain address."""
        try:
            validate_email(
                f"postmaster@{domain}",
                check_deliverability=self.check_dns,
                allow_smtputf8=False,
                strict=True,
            )
        except EmailNotValidError as exc:
            return str(exc)
        return None
