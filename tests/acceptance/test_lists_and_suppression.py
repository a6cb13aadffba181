"""Issue 14 as a user meets it, through the real CLI: a dry run without a route that writes the
messages, lists in other encodings and formats, and the suppression list."""

from __future__ import annotations

import csv
import io
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import openpyxl
from send_helpers import SENDER, copy_campaign, last_json, mailpacer, run, send_args, smtp_url


def test_dry_run_needs_no_route_and_writes_eml(tmp_path: Path) -> None:
    """14.6: `send --dry-run --out DIR` without --smtp validates, renders every message into
    DIR as .eml (one per recipient, readable back), creates no database and sends nothing."""
    campaign = copy_campaign(tmp_path, rows=4)
    out = tmp_path / "rendered"
    db = tmp_path / "mp.db"
    result = mailpacer(
        "send", campaign / "workers.csv", "--template", campaign / "templates",
        "--from", SENDER, "--db", db, "--dry-run", "--out", out, "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = last_json(result.stdout)
    assert (report["dry_run"], report["messages"], report["out"]) == (True, 4, str(out))
    files = sorted(out.glob("*.eml"))
    assert [f.name[:9] for f in files] == ["row-00001", "row-00002", "row-00003", "row-00004"]
    first = message_from_bytes(files[0].read_bytes(), policy=default)
    assert first["To"].addresses[0].addr_spec in files[0].name
    assert not db.exists()


def test_gbk_semicolon_list_sends_with_encoding(tmp_path: Path, sandbox: Any) -> None:
    """14.11: a GBK, semicolon-separated export of the example list: refused without
    --encoding (with the hint), sent with `--encoding gbk` (separator sniffed), names intact."""
    campaign = copy_campaign(tmp_path, rows=5)
    rows = list(csv.reader(io.StringIO((campaign / "workers.csv").read_text(encoding="utf-8"))))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";").writerows(rows)
    (campaign / "workers.csv").write_bytes(buffer.getvalue().encode("gbk"))
    sb = sandbox("unlimited")
    refused = run(send_args(sb, campaign, tmp_path / "mp.db"), tmp_path)
    assert refused.returncode == 3 and "give --encoding gbk" in refused.stderr
    sent = run(send_args(sb, campaign, tmp_path / "mp.db", "--encoding", "gbk"), tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert last_json(sent.stdout)["sent"] == 5
    subjects = {str(message_from_bytes(m.data, policy=default)["To"]) for m in sb.messages}
    assert any(rows[1][1] in s for s in subjects)


def test_xlsx_list_sends(tmp_path: Path, sandbox: Any) -> None:
    """14.11: the example list saved as .xlsx sends like the CSV (numbers and dates as text)."""
    campaign = copy_campaign(tmp_path, rows=3)
    rows = list(csv.reader(io.StringIO((campaign / "workers.csv").read_text(encoding="utf-8"))))
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(campaign / "workers.xlsx")
    sb = sandbox("unlimited")
    result = mailpacer(
        "send", campaign / "workers.xlsx", "--template", campaign / "templates",
        "--smtp", smtp_url(sb), "--from", SENDER, "--db", tmp_path / "mp.db", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["sent"] == 3 == len(sb.messages)


def test_hard_bounces_and_added_addresses_are_skipped_later(tmp_path: Path, sandbox: Any) -> None:
    """14.12: a 550 5.1.1 in one campaign puts the address on the suppression list; a later
    campaign on the same database skips it and an address added with `suppress add`, saying
    why; `suppress list --json` shows both, `suppress remove` lets the address through again."""
    db = tmp_path / "mp.db"
    sb = sandbox("unlimited")
    first = copy_campaign(tmp_path / "a", rows=20)  # row 17 is nouser.sun.na.0017@example.com
    result = run(send_args(sb, first, db), tmp_path)
    assert result.returncode == 0 and last_json(result.stdout)["failed"] == 1, result.stderr
    added = mailpacer(
        "suppress", "add", "Lin.Jie.0002@example.com", "--reason", "left", "--db", db, cwd=tmp_path
    )
    assert added.returncode == 0, added.stderr
    listed = last_json(mailpacer("suppress", "list", "--json", "--db", db, cwd=tmp_path).stdout)
    assert [(e["email"], e["source"]) for e in listed] == [
        ("nouser.sun.na.0017@example.com", "bounce"),
        ("lin.jie.0002@example.com", "manual"),
    ]
    assert listed[0]["reason"].startswith("550 5.1.1") and listed[0]["campaign"] == 1
    second = copy_campaign(tmp_path / "b", rows=20)
    before = len(sb.messages)
    again = run(send_args(sb, second, db), tmp_path)
    assert again.returncode == 0, again.stderr
    report = last_json(again.stdout)
    assert (report["total"], report["sent"], report["failed"]) == (18, 18, 0)
    assert "suppressed: row 17 nouser.sun.na.0017@example.com: 550 5.1.1" in again.stderr
    assert "suppressed: row 2 lin.jie.0002@example.com: left" in again.stderr
    assert len(sb.messages) - before == 18
    removed = mailpacer("suppress", "remove", "lin.jie.0002@example.com", "--db", db, cwd=tmp_path)
    assert removed.returncode == 0 and "1 address(es) removed" in removed.stderr
    bad = mailpacer("suppress", "add", "not-an-address", "--db", db, cwd=tmp_path)
    assert bad.returncode == 2 and "not an address" in bad.stderr
