"""Whole-campaign validation: every problem found before sending, located by file and row."""

from __future__ import annotations

from pathlib import Path

import pytest
from compose_helpers import EXAMPLE, EXAMPLE_TEMPLATE, SIMPLE, write_csv, write_tree

from mailpacer.compose import iter_recipients, validate_campaign
from mailpacer.compose.validate import MAX_LISTED
from mailpacer.core.errors import InputError

HEADER = "email,name,language,worker_id,site,shift_date,attachment\n"


def check_example(tmp_path: Path, rows: str, **kwargs: bool):  # type: ignore[no-untyped-def]
    """Validate ``rows`` (CSV lines after the worker-qr header) against the example template."""
    path = write_csv(tmp_path / "workers.csv", HEADER + rows)
    return validate_campaign(path, EXAMPLE_TEMPLATE, sender="ops@example.com", **kwargs)


def messages(problems: list) -> list[str]:  # type: ignore[type-arg]
    """Problems as ``row N: message`` strings (file left out)."""
    return [f"row {p.row}: {p.message}" for p in problems]


def test_example_campaign_is_valid() -> None:
    """The 200 example workers pass: no problems, no warnings, nothing skipped."""
    check = validate_campaign(
        EXAMPLE / "workers.csv", EXAMPLE_TEMPLATE, sender="Ops <ops@example.com>"
    )
    assert (
        repr(check) == "<CampaignCheck rows=200 valid=200 problems=0 warnings=0 skipped=0 ok=True>"
    )
    check.raise_for_problems()


def test_mistakes_example_reports_each_mistake() -> None:
    """The error demo file: every deliberate mistake is found with its row, nothing is valid."""
    check = validate_campaign(
        EXAMPLE / "workers-with-mistakes.csv", EXAMPLE_TEMPLATE, sender="ops@example.com"
    )
    found = "\n".join(messages(check.problems))
    for expected in [
        "missing variable 'site' (used in en/subject.txt:1)",
        "did you mean column 'stie'?",
        "row 2: invalid address 'li.na.9002@@example.com'",
        "row 3: unknown language 'fr' and template.toml has no fallback_language (have: en, zh)",
        "row 5: has 6 cells, the header has 7",
        "row 6: attachment '../../../../etc/passwd' is outside the campaign folder",
        "row 7: attachment 'files/contract-W9007.pdf': file not found",
        "row 8: column 'name' goes into a header and contains a line break; refused",
        "row 9: empty email address",
        "row 10: invalid address 'chen.jie.9010@example'",
    ]:
        assert expected in found, expected
    assert messages(check.warnings) == [
        "row 4: duplicate recipient 'ZHANG.WEI.9001@example.com' (first in row 1); skipped"
    ]
    assert (check.ok, check.valid) == (False, 0)
    with pytest.raises(InputError) as caught:
        check.raise_for_problems()
    assert len(caught.value.problems) == len(check.problems)


def test_missing_variable_names_row_and_variable(tmp_path: Path) -> None:
    """A column the template needs is reported once per language, with its first row."""
    path = write_csv(
        tmp_path / "r.csv", "email,name,language,site,shift_date\na@example.com,A,en,S,D\n"
    )
    check = validate_campaign(path, EXAMPLE_TEMPLATE, sender="ops@example.com")
    assert messages(check.problems) == [
        "row 1: missing variable 'worker_id' (used in en/body.txt:7): the CSV has no such "
        "column; 1 row(s) in language 'en' need it",
    ]
    assert not check.ok


def test_duplicates_are_skipped_with_a_warning(tmp_path: Path) -> None:
    """A repeated address (any case) is a warning, its row is skipped, the rest is valid."""
    check = check_example(
        tmp_path,
        "a@example.com,A,en,W1,S,D,\nb@example.com,B,en,W2,S,D,\nA@EXAMPLE.com,A2,en,W3,S,D,\n",
    )
    assert check.ok and check.problems == []
    assert (check.valid, check.skip_rows) == (2, frozenset({3}))
    assert messages(check.warnings) == [
        "row 3: duplicate recipient 'A@EXAMPLE.com' (first in row 1); skipped"
    ]


def test_skip_invalid_sends_the_valid_rows(tmp_path: Path) -> None:
    """With skip_invalid the problems are listed but not fatal; skip_rows holds the bad rows,
    and iter_recipients with those skip_rows yields exactly the valid recipients."""
    rows = (
        "a@example.com,A,en,W1,S,D,\nbad@,B,en,W2,S,D,\n"
        "c@example.com,C,fr,W3,S,D,\nd@example.com,D,zh,W4,S,D,\n"
    )
    strict = check_example(tmp_path, rows)
    assert not strict.ok and strict.skip_rows == frozenset()
    check = check_example(tmp_path, rows, skip_invalid=True)
    assert check.ok and len(check.problems) == 2
    assert check.skip_rows == frozenset({2, 3})
    check.raise_for_problems()
    sent = [r.email for r in iter_recipients(tmp_path / "workers.csv", skip_rows=check.skip_rows)]
    assert sent == ["a@example.com", "d@example.com"] and check.valid == 2


def test_unknown_language_with_fallback_is_a_warning(tmp_path: Path) -> None:
    """With fallback_language, an unknown language is sent in the fallback, with one warning."""
    template = write_tree(tmp_path / "t", {**SIMPLE, "template.toml": 'fallback_language = "en"\n'})
    path = write_csv(
        tmp_path / "r.csv", "email,name,language,code\na@example.com,A,fr,1\nb@example.com,B,fr,2\n"
    )
    check = validate_campaign(path, template, sender="ops@example.com")
    assert check.ok
    assert [w.message for w in check.warnings] == [
        "language 'fr' has no template folder; 2 row(s) get the fallback 'en'"
    ]


def test_template_errors_are_fatal_even_with_skip_invalid(tmp_path: Path) -> None:
    """A template that does not parse stops the campaign with file:line, skip_invalid or not."""
    template = write_tree(tmp_path / "t", {**SIMPLE, "en/body.txt": "{% if %}\n"})
    path = write_csv(tmp_path / "r.csv", "email,name,code\na@example.com,A,1\n")
    check = validate_campaign(path, template, sender="ops@example.com", skip_invalid=True)
    assert not check.ok and check.fatal
    assert str(check.problems[0]).startswith(
        f"{template / 'en' / 'body.txt'}:1: template syntax error"
    )


def test_file_level_errors_are_fatal(tmp_path: Path) -> None:
    """Non-UTF-8, an empty file, a missing email column or a bad sender: not ok, clear message."""
    gbk = write_csv(tmp_path / "gbk.csv", "email,name,code\na@example.com,张伟,1\n", encoding="gbk")
    empty = write_csv(tmp_path / "empty.csv", "")
    no_email = write_csv(tmp_path / "no_email.csv", "name,code\nA,1\n")
    template = write_tree(tmp_path / "t", SIMPLE)
    for path, expected in [
        (gbk, "not UTF-8"),
        (empty, "the file is empty"),
        (no_email, "no 'email' column"),
    ]:
        check = validate_campaign(path, template, sender="ops@example.com", skip_invalid=True)
        assert not check.ok and expected in str(check.problems[0])
    check = validate_campaign(
        write_csv(tmp_path / "ok.csv", "email,name,code\na@example.com,A,1\n"),
        template,
        sender="nobody",
    )
    assert not check.ok and "sender 'nobody'" in str(check.problems[0])


def test_header_only_file_has_nothing_to_send(tmp_path: Path) -> None:
    """A header without rows is not ok: nothing to send."""
    check = check_example(tmp_path, "")
    assert not check.ok
    with pytest.raises(InputError, match="no valid recipients"):
        check.raise_for_problems()


def test_sample_render_catches_runtime_errors(tmp_path: Path) -> None:
    """One real row per language is rendered: an empty QR value in it is found before sending."""
    template = write_tree(tmp_path / "t", SIMPLE)
    path = write_csv(tmp_path / "r.csv", "email,name,code\na@example.com,A,\n")
    check = validate_campaign(path, template, sender="ops@example.com")
    assert not check.ok
    assert messages(check.problems) == ["row 1: qr(''): cannot make a QR code of an empty value"]


def test_problem_list_is_capped(tmp_path: Path) -> None:
    """Thousands of bad rows list MAX_LISTED problems plus one summary line; all are counted."""
    rows = "".join(f"bad{i}@,A,en,W{i},S,D,\n" for i in range(MAX_LISTED + 500))
    check = check_example(tmp_path, rows, skip_invalid=True)
    assert len(check.problems) == MAX_LISTED + 1
    assert check.problems[-1].message == "... and 500 more row problems not listed"
    assert len(check.skip_rows) == MAX_LISTED + 500 and check.valid == 0 and not check.ok


def test_skip_invalid_skips_a_row_with_a_missing_attachment(tmp_path: Path) -> None:
    """Issue 14.3: the first row of a language names a missing attachment: with skip_invalid it
    is skipped and reported once, the other rows are sent (it is not also the row the template
    is test-rendered with, which made the problem fatal and listed it twice)."""
    rows = "a@example.com,A,en,W1,S,D,files/missing.pdf\nb@example.com,B,en,W2,S,D,\n"
    check = check_example(tmp_path, rows, skip_invalid=True)
    [problem] = messages(check.problems)
    assert problem.startswith("row 1: attachment 'files/missing.pdf': file not found")
    assert (check.ok, check.fatal, check.valid, check.skip_rows) == (True, False, 1, frozenset({1}))
    check.raise_for_problems()


def test_example_template_needs_no_attachment_column(tmp_path: Path) -> None:
    """Issue 14.5: the example's `attachment` column is optional: a user's own list without it
    passes validation, sample renders included, in both languages."""
    path = write_csv(
        tmp_path / "mine.csv",
        "email,name,language,worker_id,site,shift_date\n"
        "a@example.com,A,en,W1,North gate,2026-06-01\nb@example.com,B,zh,W2,北门,2026-06-02\n",
    )
    check = validate_campaign(path, EXAMPLE_TEMPLATE, sender="ops@example.com")
    assert check.problems == [] and (check.ok, check.valid) == (True, 2)
