"""The recipients CSV: encodings, header checks, row numbering, ragged rows, address checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from compose_helpers import write_csv
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpacer.compose import iter_recipients
from mailpacer.compose.recipients import AddressChecker
from mailpacer.core.errors import InputError


def test_bom_header_case_blank_lines_and_row_numbers(tmp_path: Path) -> None:
    """A BOM is ignored, Email/Name/Language match any case, blank lines are skipped but keep
    their row number, values of the known columns are trimmed, and every column is a variable."""
    path = write_csv(
        tmp_path / "r.csv",
        "\ufeffEmail,NAME,Language,工号\n a@example.com ,张伟 ,zh,W1\n\nb@example.com,Bob,en,W2\n",
    )
    rows = list(iter_recipients(path))
    assert [(r.row, r.email) for r in rows] == [(1, "a@example.com"), (3, "b@example.com")]
    assert rows[0].variables == {
        "email": "a@example.com",
        "name": "张伟",
        "language": "zh",
        "工号": "W1",
    }


def test_skip_rows(tmp_path: Path) -> None:
    """skip_rows leaves those data rows out."""
    path = write_csv(tmp_path / "r.csv", "email\na@example.com\nb@example.com\nc@example.com\n")
    assert [r.email for r in iter_recipients(path, skip_rows=frozenset({2}))] == [
        "a@example.com",
        "c@example.com",
    ]


def problem_text(path: Path) -> str:
    """The error iter_recipients raises for ``path``, as text."""
    with pytest.raises(InputError) as caught:
        list(iter_recipients(path))
    return "\n".join(str(p) for p in caught.value.problems)


def test_non_utf8_csv_names_line_and_column(tmp_path: Path) -> None:
    """A GBK-encoded file (Chinese Excel) is refused at its first bad byte, with a hint."""
    path = write_csv(
        tmp_path / "r.csv", "email,name\na@example.com,Ann\nb@example.com,张伟\n", encoding="gbk"
    )
    assert problem_text(path) == (
        f"{path}:3:15: not UTF-8: byte 0xd5 cannot be decoded; it looks like GBK/GB18030 "
        "(Chinese Excel): give --encoding gbk or save it as 'CSV UTF-8'"
    )


def test_latin1_csv_is_refused(tmp_path: Path) -> None:
    """Any non-UTF-8 byte is an error, not silently replaced."""
    path = write_csv(tmp_path / "r.csv", "email,name\nz@example.com,Zoë\n", encoding="latin-1")
    assert "not UTF-8: byte 0xeb" in problem_text(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        ("name,language\nAnn,en\n", "no 'email' column"),
        ("email,name,name\n", "column 'name' appears twice"),
        ("email,,x\n", "column 2 has an empty name"),
        ('email,name\n"a@example.com,Ann\n', "CSV syntax error"),
    ],
)
def test_bad_headers_and_syntax(tmp_path: Path, text: str, expected: str) -> None:
    """Empty files, missing email column, duplicate or empty names, broken quoting: clear errors."""
    assert expected in problem_text(write_csv(tmp_path / "r.csv", text))


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is an InputError naming it."""
    assert problem_text(tmp_path / "none.csv").endswith("none.csv: recipients file not found")


def test_ragged_row_stops_iteration(tmp_path: Path) -> None:
    """A row with too few or too many cells is an error naming the row (unless skipped)."""
    path = write_csv(tmp_path / "r.csv", "email,name\na@example.com,Ann\nb@example.com\n")
    assert (
        problem_text(path)
        == f"{path} row 2: has 1 cells, the header has 2 (a missing or extra comma?)"
    )
    assert len(list(iter_recipients(path, skip_rows=frozenset({2})))) == 1


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("worker.0001@example.com", True),
        ("Bob@Example.COM", True),
        ("a@例子.中国", True),
        ("nouser.1@example.com", True),
        ("a..b@example.com", False),
        ("a@b", False),
        ("x@localhost", False),
        ("li.na@@example.com", False),
        ("张伟@example.com", False),
        ("a@-example.com", False),
        ("a" * 65 + "@example.com", False),
    ],
)
def test_address_checker(address: str, ok: bool) -> None:
    """Known good and bad addresses, via the fast path and email-validator alike."""
    checker = AddressChecker()
    assert (checker.problem(address) is None) is ok
    assert (checker.problem(address) is None) is ok  # second time: cached domain verdict


def email_validator_accepts(address: str) -> bool:
    """email-validator's own verdict, the reference for the fast path."""
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(
    local=st.text(st.sampled_from("abcXYZ09.-_+!#'\"@ ()é"), min_size=0, max_size=70),
    domain=st.sampled_from(
        ["example.com", "b", "ex-ample.co", "-bad.com", "x.localhost", "例子.中国", "a..b.com"]
    ),
)
def test_fast_path_agrees_with_email_validator(local: str, domain: str) -> None:
    """Property: the cached fast path gives the same verdict as email-validator itself."""
    checker = AddressChecker()
    checker.problem(f"warm.up@{domain}")  # fill the domain cache first
    address = f"{local}@{domain}"
    assert (checker.problem(address) is None) == email_validator_accepts(address)
