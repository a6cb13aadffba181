"""`mailpacer sandbox` as a subprocess: bad input, --list-profiles, and a real start/stop."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

from mailpacer.sandbox import PROFILES

CLI = [sys.executable, "-m", "mailpacer", "sandbox"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the sandbox CLI to completion (bounded)."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=ENV)


def test_unknown_profile_lists_the_profiles_and_fails() -> None:
    """An unknown profile is an error naming every known profile; exit code non-zero."""
    result = run("--profile", "gmail-ish", "--port", "0")
    assert result.returncode == 2
    assert "unknown sandbox profile 'gmail-ish'" in result.stderr
    for name in PROFILES:
        assert name in result.stderr


def test_port_in_use_is_a_clear_error() -> None:
    """A port something already listens on: one clear line, exit non-zero, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--profile", "strict", "--port", str(port))
    assert result.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}: " in result.stderr
    assert "Traceback" not in result.stderr


def test_list_profiles_prints_each_profile_with_its_capacity() -> None:
    """--list-profiles prints the formula and every profile with its capacity."""
    result = run("--list-profiles")
    assert result.returncode == 0
    assert "capacity = min(max_connections / t, rate_per_minute / 60)" in result.stdout
    for name, profile in PROFILES.items():
        assert f"\n{name}: {profile.description}\n" in result.stdout
    assert "capacity: 66.7 messages/s" in result.stdout  # strict
    assert "capacity: unbounded" in result.stdout  # unlimited


def test_start_send_one_message_and_stop_on_sigterm(tmp_path: Path) -> None:
    """Start on a free port, deliver one message with smtplib, SIGTERM: exit 0, the message is in
    mailbox.jsonl and as an .eml file."""
    box = tmp_path / "box"
    proc = subprocess.Popen(
        [*CLI, "--profile", "strict", "--port", "0", "--mailbox", str(box)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(capacity 66\.7 messages/s\)", first)
        assert match, first
        body = b"Subject: hi\r\nMessage-ID: <cli-1@client.test>\r\n\r\nhello\r\n"
        with smtplib.SMTP("127.0.0.1", int(match.group(1)), "client.test", timeout=10) as client:
            client.sendmail("s@client.test", ["w@example.com"], body)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped: 1 messages accepted" in out
    [line] = (box / "mailbox.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["message_id"] == "<cli-1@client.test>"
    assert record["rcpt_tos"] == ["w@example.com"]
    assert [p.read_bytes() for p in box.glob("*.eml")] == [body]


def test_auth_profile_prints_credentials_and_certificate() -> None:
    """`auth-tls` prints the user, the password given and where the CA certificate is."""
    proc = subprocess.Popen(
        [*CLI, "--profile", "auth-tls", "--port", "0", "--password", "pw-123"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for _ in range(30):  # bounded: the banner is a dozen lines at most
            line = proc.stdout.readline()
            lines.append(line)
            if not line or line.startswith("Ctrl-C"):
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    text = "".join(lines)
    assert "credentials: user=sandbox password=pw-123" in text
    assert re.search(r"CA certificate: \S+ca\.pem", text)
    assert proc.returncode == 0, err
