"""`mailpacer preview` as a subprocess: writes .eml and .html, reports bad input with exit 3."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "worker-qr"


def mailpacer(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (this interpreter's installation) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "mailpacer", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_preview_writes_eml_and_html(tmp_path: Path) -> None:
    """Row 3 of the example (a Chinese worker with an attachment) becomes row-3.eml (a parseable
    message with the QR image and the PDF) and row-3.html (the QR inlined as a data: URI)."""
    result = mailpacer(
        "preview",
        EXAMPLE / "workers.csv",
        "--template",
        EXAMPLE / "templates",
        "--row",
        "3",
        "--out",
        "out",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    eml, html = (Path(line) for line in result.stdout.split())
    assert (eml, html) == (Path("out/row-3.eml"), Path("out/row-3.html"))
    assert "row 3: wu.lei.0003@example.com — 吴磊，您在北门仓库的签到二维码" in result.stderr
    message = email.message_from_bytes((tmp_path / eml).read_bytes(), policy=email.policy.default)
    assert str(message["Subject"]) == "吴磊，您在北门仓库的签到二维码（2026-06-17）"
    types = [part.get_content_type() for part in message.walk()]
    assert "image/png" in types and "application/pdf" in types
    page = (tmp_path / html).read_text(encoding="utf-8")
    assert (
        '<html lang="zh">' in page and 'src="data:image/png;base64,' in page and "cid:" not in page
    )


def test_preview_defaults_to_the_first_row(tmp_path: Path) -> None:
    """Without --row the first data row is rendered, into ./preview/."""
    result = mailpacer(
        "preview", EXAMPLE / "workers.csv", "--template", EXAMPLE / "templates", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["preview/row-1.eml", "preview/row-1.html"]
    assert (tmp_path / "preview" / "row-1.html").stat().st_size > 500


def test_preview_reports_bad_template_with_file_and_line(tmp_path: Path) -> None:
    """A template that does not parse: exit 3, file:line on stderr, no files written."""
    template = tmp_path / "t"
    (template / "en").mkdir(parents=True)
    (template / "en" / "subject.txt").write_text("Hi {{ name\n", encoding="utf-8")
    (template / "en" / "body.txt").write_text("Hi\n", encoding="utf-8")
    result = mailpacer("preview", EXAMPLE / "workers.csv", "--template", template, cwd=tmp_path)
    assert result.returncode == 3
    assert f"error: {template / 'en' / 'subject.txt'}:1: template syntax error" in result.stderr
    assert "nothing was sent" in result.stderr
    assert not (tmp_path / "preview").exists()


def test_preview_of_a_missing_row_or_bad_row(tmp_path: Path) -> None:
    """A row number past the end, or a row that cannot render (unknown language), exit 3."""
    missing = mailpacer(
        "preview",
        EXAMPLE / "workers.csv",
        "--template",
        EXAMPLE / "templates",
        "--row",
        "999",
        cwd=tmp_path,
    )
    assert missing.returncode == 3 and "no row 999 in the file" in missing.stderr
    bad = mailpacer(
        "preview",
        EXAMPLE / "workers-with-mistakes.csv",
        "--template",
        EXAMPLE / "templates",
        "--row",
        "3",
        cwd=tmp_path,
    )
    assert bad.returncode == 3 and "row 3: unknown language 'fr'" in bad.stderr


def test_preview_reaches_rows_after_broken_ones(tmp_path: Path) -> None:
    """Rows before the wanted one may be broken; the wanted row's own problem is what counts:
    a ragged row names its cells, a row of a language whose variable has no column names it."""
    args = ["--template", EXAMPLE / "templates"]
    ragged = mailpacer(
        "preview", EXAMPLE / "workers-with-mistakes.csv", *args, "--row", "5", cwd=tmp_path
    )
    assert ragged.returncode == 3 and "row 5: has 6 cells, the header has 7" in ragged.stderr
    injected = mailpacer(
        "preview", EXAMPLE / "workers-with-mistakes.csv", *args, "--row", "8", cwd=tmp_path
    )
    assert injected.returncode == 3
    assert "row 8: en: missing variable: 'site' is undefined" in injected.stderr
