"""`mailpacer send` refuses bad input before anything happens: one clear error that says what and
where, the exit code `send --help` documents, no database, no connection to the server."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from send_helpers import SENDER, copy_campaign, mailpacer, smtp_url

USAGE, INPUT = 2, 3  # documented in `mailpacer send --help`


def send_with(tmp_path: Path, sb: Any, *flags: str, csv_path: Path | None = None) -> Any:
    """`mailpacer send` of a 5-row worker-qr copy with ``flags`` after the defaults (later flags
    win in click, so a flag given here replaces the default one)."""
    campaign = tmp_path / "worker-qr"
    if not campaign.exists():
        copy_campaign(tmp_path, rows=5)
    return mailpacer(
        "send", csv_path or campaign / "workers.csv", "--template", campaign / "templates",
        "--smtp", smtp_url(sb), "--from", SENDER, "--db", tmp_path / "mp.db", *flags,
        cwd=tmp_path, timeout=30,
    )  # fmt: skip


def assert_refused(result: Any, code: int, message: str, tmp_path: Path, sb: Any) -> None:
    """Exit ``code``, ``message`` on stderr as an `error:` line, nothing stored, nothing sent."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert any(line.startswith(("error:", "Error:")) for line in result.stderr.splitlines())
    assert result.stdout == ""
    assert not (tmp_path / "mp.db").exists()
    assert sb.counters.connections_opened == 0 and sb.messages == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1:{port}", "--smtp 'ftp://127.0.0.1:{port}': unknown scheme 'ftp'"),
        ("smtp://:{port}", "--smtp 'smtp://:{port}': no host"),
        ("smtp:///", "--smtp 'smtp:///': no host"),
        ("smtp://127.0.0.1:99999", "--smtp 'smtp://127.0.0.1:99999': Port out of range"),
        ("smtp://127.0.0.1:2x5", "--smtp 'smtp://127.0.0.1:2x5': Port could not be cast"),
        ("smtp://127.0.0.1:{port}/inbox", "unexpected path or query"),
    ],
)
def test_bad_smtp_url(tmp_path: Path, sandbox: Any, url: str, message: str) -> None:
    """A bad --smtp URL (scheme, host, port, path) is named with what is wrong: exit 2."""
    sb = sandbox("unlimited")
    result = send_with(tmp_path, sb, "--smtp", url.format(port=sb.port))
    assert_refused(result, USAGE, message.format(port=sb.port), tmp_path, sb)


def test_smtp_port_zero_is_refused(tmp_path: Path, sandbox: Any) -> None:
    """Port 0 cannot be connected to: refused up front like any bad port, exit 2."""
    sb = sandbox("unlimited")
    result = send_with(tmp_path, sb, "--smtp", "smtp://127.0.0.1:0")
    assert_refused(result, USAGE, "--smtp 'smtp://127.0.0.1:0'", tmp_path, sb)


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        ("abc", "--max-rate='abc': 'abc' is not a rate; expected e.g. 120/min"),
        ("0/min", "--max-rate='0/min': '0/min': the rate must be greater than zero"),
        ("-5/s", "--max-rate='-5/s': '-5/s' is not a rate"),
        ("10/fortnight", "--max-rate='10/fortnight': '10/fortnight' is not a rate"),
        # issue 14.9: a bare number once meant "per minute" without a word
        ("5", "--max-rate='5': '5' has no unit; write 5/s, 5/min, 5/h or 5/day"),
    ],
)
def test_bad_max_rate(tmp_path: Path, sandbox: Any, rate: str, message: str) -> None:
    """A --max-rate that is not a positive N/unit names the flag and the accepted forms: exit 2."""
    sb = sandbox("unlimited")
    result = send_with(tmp_path, sb, f"--max-rate={rate}")
    assert_refused(result, USAGE, message, tmp_path, sb)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bad_max_connections(tmp_path: Path, sandbox: Any, value: str) -> None:
    """--max-connections below 1 is refused by the flag's range: exit 2."""
    sb = sandbox("unlimited")
    result = send_with(tmp_path, sb, f"--max-connections={value}")
    message = f"Invalid value for '--max-connections': {value} is not in the range x>=1"
    assert_refused(result, USAGE, message, tmp_path, sb)


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        ("hr@example.com\r\nBcc: all@example.com", "line breaks are not allowed in a header"),
        ("HR\n <hr@example.com>", "line breaks are not allowed in a header"),
        ("hr@", "expected one address such as"),
        ("@example.com", "There must be something before the @-sign"),
        ("hr.example.com", "An email address must have an @-sign"),
        ("HR <hr@exa mple.com>", "expected one address such as 'Team <team@example.com>'"),
        ("hr@example.com, boss@example.com", "expected one address such as"),
        ("hr@localhost", "The part after the @-sign is not valid"),
    ],
)
def test_bad_from(tmp_path: Path, sandbox: Any, sender: str, message: str) -> None:
    """A --from with CR/LF (header injection), no usable address, or more than one, is refused
    naming --from and the value: exit 2 — never silently 'corrected' to another address."""
    sb = sandbox("unlimited")
    result = send_with(tmp_path, sb, "--from", sender)
    assert_refused(result, USAGE, f"error: --from {sender!r}: {message}", tmp_path, sb)


def test_bad_from_in_the_environment_names_the_variable(tmp_path: Path, sandbox: Any) -> None:
    """A bad sender from MAILPACER_FROM is reported against MAILPACER_FROM, not --from."""
    sb = sandbox("unlimited")
    campaign = copy_campaign(tmp_path, rows=5)
    result = mailpacer(
        "send", campaign / "workers.csv", "--template", campaign / "templates",
        "--smtp", smtp_url(sb), "--db", tmp_path / "mp.db",
        cwd=tmp_path, timeout=30, env={"MAILPACER_FROM": "hr@@example.com"},
    )  # fmt: skip
    assert_refused(result, USAGE, "error: MAILPACER_FROM 'hr@@example.com':", tmp_path, sb)


def test_bad_address_on_row_3_names_file_and_row(tmp_path: Path, sandbox: Any) -> None:
    """A recipients CSV whose third data row has a bad address: exit 3, the error names the file
    and row 3 and the address, and says nothing was sent."""
    sb = sandbox("unlimited")
    campaign = copy_campaign(tmp_path, rows=5)
    path = campaign / "bad.csv"  # beside workers.csv: row 3's attachment is found
    with (campaign / "workers.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[3][0] = "wu.lei.0003@@example.com"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    result = send_with(tmp_path, sb, csv_path=path)
    message = f"error: {path} row 3: invalid address 'wu.lei.0003@@example.com'"
    assert_refused(result, INPUT, message, tmp_path, sb)
    assert "1 problem(s); nothing was sent." in result.stderr


def test_missing_template_folder(tmp_path: Path, sandbox: Any) -> None:
    """--template naming a folder that does not exist: exit 3, the path is in the error."""
    sb = sandbox("unlimited")
    missing = tmp_path / "no-such-templates"
    result = send_with(tmp_path, sb, "--template", str(missing))
    assert_refused(result, INPUT, f"error: {missing}: template directory not found", tmp_path, sb)


def test_help_documents_the_exit_codes(tmp_path: Path) -> None:
    """`send --help` lists every exit code these tests rely on."""
    result = mailpacer("send", "--help", cwd=tmp_path, timeout=30)
    assert result.returncode == 0
    text = result.stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert f"\n    {code}" in text
    assert "a bad flag, URL, address or config value" in text
