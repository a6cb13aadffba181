"""Opt-in (``make test-postfix``, never in CI): a real Debian Postfix on 127.0.0.1 whose anvil
allows 2 connections and 50 messages per 10 s per client, told nothing (issue #15).

The fixture installs Debian's ``postfix`` with apt when it is missing, configures it to listen
on the loopback only and to discard everything it accepts (nothing leaves the machine), and
makes anvil limit 127.0.0.1 too (by default ``smtpd_client_event_limit_exceptions`` exempts
``mynetworks``). It needs root (apt-get, /etc/postfix, starting the daemon).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_engine_sandbox import campaign, run_engine

from mailpacer.core.route import Route
from mailpacer.store import Store, open_store

pytestmark = [pytest.mark.postfix, pytest.mark.timeout(900)]  # (apt-get, then ~2 minutes)

MESSAGES = 600
CAPACITY = 50 / 10  #: messages/s anvil allows one client
SETTINGS = {
    "inet_interfaces": "loopback-only",
    "inet_protocols": "ipv4",
    "mydestination": "",
    "mynetworks": "127.0.0.0/8",
    "smtpd_relay_restrictions": "permit_mynetworks, reject",
    "default_transport": "discard:nothing leaves the test machine",
    "relay_transport": "discard:nothing leaves the test machine",
    "local_transport": "discard:nothing leaves the test machine",
    "smtpd_client_connection_count_limit": "2",
    "smtpd_client_message_rate_limit": "50",
    "anvil_rate_time_unit": "10s",
    "smtpd_client_event_limit_exceptions": "",
}


def _run(*command: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(command, check=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def postfix() -> Route:
    """A running Postfix on 127.0.0.1:25 with anvil's limits, discarding what it accepts."""
    if shutil.which("postconf") is None:
        _run("apt-get", "update")
        _run("apt-get", "install", "-y", "--no-install-recommends", "postfix")
    _run("postconf", "-e", *(f"{key}={value}" for key, value in SETTINGS.items()))
    running = subprocess.run(["postfix", "status"], check=False, timeout=30).returncode == 0
    _run("postfix", "reload" if running else "start")
    time.sleep(2)  # (anvil and smtpd start on the first connection; the master needs a moment)
    return Route(host="127.0.0.1", port=25, timeout=30.0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    """A fresh SQLite store."""
    s = open_store(str(tmp_path / "postfix.db"))
    yield s
    s.close()


def test_six_hundred_messages_told_nothing(store: Store, postfix: Route) -> None:
    """600 messages through anvil's 2 connections and 50 per 10 s, told nothing: ≥ 90% of the
    5 messages/s capacity and nothing lost (the issue measured 5%)."""
    record = campaign(store, MESSAGES)
    started = time.monotonic()
    report = run_engine(store, record, postfix)
    seconds = time.monotonic() - started
    print(f"postfix anvil: {MESSAGES} in {seconds:.1f} s = {MESSAGES / seconds / CAPACITY:.0%}")
    print(f"learned: {report.limits}")
    assert report.sent == MESSAGES, report
    assert report.failed == 0 and report.uncertain == 0 and report.queued == 0
    # 50 pass at once, then one window per 50: (600 / 50 - 1) windows of 10 s is the best
    assert MESSAGES / seconds >= 0.9 * CAPACITY, seconds
