"""Recipient lists as people keep them (issue 14.11): CSV in another encoding or separator,
Excel workbooks and JSON Lines, all through the same whole-list validation with locations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest
from compose_helpers import EXAMPLE_TEMPLATE, write_csv

from mailpacer.compose import iter_recipients, validate_campaign
from mailpacer.compose.tables import TableFormat, cell_text, parse_delimiter
from mailpacer.core.errors import InputError, UsageError

HEADER = ["email", "name", "language", "worker_id", "site", "shift_date"]


def problems_of(path: Path, fmt: TableFormat | None = None) -> list[str]:
    """The problems iter_recipients raises for ``path``, as text."""
    with pytest.raises(InputError) as caught:
        list(iter_recipients(path, fmt=fmt))
    return [str(p) for p in caught.value.problems]


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    """A one-sheet workbook with ``rows`` (the first is the header)."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_gbk_csv_reads_with_its_encoding(tmp_path: Path) -> None:
    """A GBK file (Chinese Excel) is refused as UTF-8 with a hint, and read with --encoding."""
    text = "email,name\na@example.com,张伟\n"
    path = write_csv(tmp_path / "r.csv", text, encoding="gbk")
    assert "give --encoding gbk" in problems_of(path)[0]
    rows = list(iter_recipients(path, fmt=TableFormat(encoding="gbk")))
    assert [(r.row, r.variables["name"]) for r in rows] == [(1, "张伟")]


def test_wrong_encoding_names_line_and_column(tmp_path: Path) -> None:
    """A byte the given encoding cannot decode is located by line and column."""
    path = write_csv(tmp_path / "r.csv", "email,name\na@example.com,\xff\n", encoding="latin-1")
    [problem] = problems_of(path, TableFormat(encoding="ascii"))
    assert problem == f"{path}:2:15: not ascii: byte 0xff cannot be decoded"


def test_unknown_encoding_and_bad_delimiter_are_usage_errors() -> None:
    """An encoding Python does not know, or a delimiter of two characters: exit-2 errors."""
    with pytest.raises(UsageError, match="--encoding 'klingon': unknown encoding"):
        TableFormat(encoding="klingon")
    with pytest.raises(UsageError, match="--delimiter ';;': one character"):
        TableFormat(delimiter=";;")
    assert parse_delimiter("tab") == "\t" and parse_delimiter(None) is None


def test_semicolon_is_sniffed_and_delimiter_can_be_given(tmp_path: Path) -> None:
    """A European-Excel CSV with `;` reads without a flag; --delimiter forces a separator (a
    `;` inside a comma-separated file's cells stays text)."""
    path = write_csv(tmp_path / "r.csv", "email;name;note\na@example.com;Ann;x,y\n")
    [row] = iter_recipients(path)
    assert row.variables == {"email": "a@example.com", "name": "Ann", "note": "x,y"}
    tabbed = write_csv(tmp_path / "t.csv", "email\tname\nb@example.com\tBo\n")
    [row] = iter_recipients(tabbed)
    assert row.variables["name"] == "Bo"
    commas = write_csv(tmp_path / "c.csv", "email,note\nc@example.com,a;b;c\n")
    [row] = iter_recipients(commas, fmt=TableFormat(delimiter=","))
    assert row.variables["note"] == "a;b;c"


def test_ragged_semicolon_row_names_the_separator(tmp_path: Path) -> None:
    """A row with a missing `;` is reported with its row and the separator in use."""
    path = write_csv(tmp_path / "r.csv", "email;name\na@example.com;Ann\nb@example.com\n")
    assert problems_of(path) == [
        f"{path} row 2: has 1 cells, the header has 2 (a missing or extra semicolon?)"
    ]


def test_xlsx_values_become_template_text(tmp_path: Path) -> None:
    """A workbook's first sheet: numbers without `.0`, dates as ISO, empty cells as "", short
    rows padded; blank rows are skipped but counted (row N is sheet row N + 1)."""
    path = write_xlsx(
        tmp_path / "w.xlsx",
        [
            HEADER,
            ["a@example.com", "Ann", "en", 1001, "North", dt.datetime(2026, 6, 10)],
            [None, None],
            ["b@example.com", "Bo", "zh", 1002.0],
        ],
    )
    rows = list(iter_recipients(path))
    assert [r.row for r in rows] == [1, 3]
    assert rows[0].variables["worker_id"] == "1001"
    assert rows[0].variables["shift_date"] == "2026-06-10"
    assert rows[1].variables["worker_id"] == "1002" and rows[1].variables["site"] == ""


def test_xlsx_goes_through_whole_list_validation(tmp_path: Path) -> None:
    """The same checks with rows: a bad address and a value beyond the named columns."""
    path = write_xlsx(
        tmp_path / "w.xlsx",
        [
            HEADER,
            ["a@example.com", "Ann", "en", "W1", "North", "2026-06-10"],
            ["bad@", "Bo", "en", "W2", "North", "2026-06-10"],
            ["c@example.com", "Cy", "en", "W3", "North", "2026-06-10", "stray"],
        ],
    )
    check = validate_campaign(path, EXAMPLE_TEMPLATE, sender="ops@example.com")
    found = [str(p) for p in check.problems]
    assert found[0].startswith(f"{path} row 2: invalid address 'bad@'")
    assert found[1] == (
        f"{path} row 3: has values in 7 columns, the header names 6"
        " (a value beyond the last named column?)"
    )
    assert (check.valid, check.ok) == (1, False)


def test_a_file_that_is_not_a_workbook(tmp_path: Path) -> None:
    """A `.xlsx` that is not one (a renamed CSV) is named, not a traceback."""
    path = write_csv(tmp_path / "w.xlsx", "email\na@example.com\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: not an Excel .xlsx workbook")


def test_json_lines(tmp_path: Path) -> None:
    """One object per line: the first's keys are the columns, a missing key is empty, numbers
    and null become text; a blank line counts as a row."""
    path = write_csv(
        tmp_path / "r.jsonl",
        '{"email": "a@example.com", "name": "Ann", "seat": 12}\n\n'
        '{"email": "b@example.com", "seat": null}\n',
    )
    rows = list(iter_recipients(path))
    assert [(r.row, r.variables) for r in rows] == [
        (1, {"email": "a@example.com", "name": "Ann", "seat": "12"}),
        (3, {"email": "b@example.com", "name": "", "seat": ""}),  # row N is line N
    ]


def test_json_lines_errors_are_located(tmp_path: Path) -> None:
    """Broken JSON is fatal with line and column; an extra key is a row problem in validation;
    a nested value is refused with its key."""
    broken = write_csv(tmp_path / "b.jsonl", '{"email": "a@example.com"}\n{"email": oops}\n')
    assert problems_of(broken) == [f"{broken}:2:11: JSON syntax error: Expecting value"]
    nested = write_csv(tmp_path / "n.jsonl", '{"email": "a@example.com", "tags": [1]}\n')
    assert problems_of(nested) == [
        f"{nested}:1: key 'tags': expected text, a number or null, not a JSON list"
    ]
    extra = write_csv(
        tmp_path / "e.jsonl",
        '{"email": "a@example.com", "name": "A", "language": "en", "worker_id": "1", '
        '"site": "S", "shift_date": "D"}\n'
        '{"email": "b@example.com", "nmae": "B"}\n',
    )
    check = validate_campaign(extra, EXAMPLE_TEMPLATE, sender="ops@example.com")
    assert [str(p) for p in check.problems] == [
        f"{extra} row 2: has keys the first line does not have: 'nmae' (the first line's keys are"
        " the columns)"
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (3.0, "3"), (2.5, "2.5"), (dt.date(2026, 1, 2), "2026-01-02")],
)
def test_cell_text(value: object, text: str) -> None:
    """Spreadsheet and JSON values as the text templates see."""
    assert cell_text(value) == text
