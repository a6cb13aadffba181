"""Helpers for acceptance tests that run the real `mailpacer` CLI against a real sandbox."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailpacer.core.states import MessageState
from mailpacer.store import MessageRecord, open_store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "worker-qr"
SENDER = "HR <hr@example.com>"
#: the environment of every subprocess: no MAILPACER_* from the developer's shell
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MAILPACER_")}


def copy_campaign(tmp_path: Path, rows: int | None = None) -> Path:
    """A copy of the worker-qr example under ``tmp_path``; ``rows`` keeps only the first rows."""
    campaign = tmp_path / "worker-qr"
    shutil.copytree(EXAMPLE, campaign)
    if rows is not None:
        csv = campaign / "workers.csv"
        lines = csv.read_text(encoding="utf-8-sig").splitlines(keepends=True)
        csv.write_text("".join(lines[: rows + 1]), encoding="utf-8")
    return campaign


def smtp_url(sb: Any) -> str:
    """The ``--smtp`` URL of a sandbox."""
    return f"smtp://{sb.host}:{sb.port}"


def send_args(sb: Any, campaign: Path, db: Path, *extra: str) -> list[str]:
    """The `mailpacer send` command line for a copied worker-qr example."""
    return [
        sys.executable, "-m", "mailpacer", "send", str(campaign / "workers.csv"),
        "--template", str(campaign / "templates"), "--smtp", smtp_url(sb),
        "--from", SENDER, "--db", str(db), "--json", *extra,
    ]  # fmt: skip


def mailpacer(
    *args: str | Path, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI to completion (bounded) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "mailpacer", *map(str, args)],
        cwd=cwd, env={**ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a whole command line (e.g. :func:`send_args`) to completion, bounded."""
    return subprocess.run(
        args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """Start a command line in the background (the caller bounds it with ``communicate``)."""
    return subprocess.Popen(
        args, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def last_json(stdout: str) -> Any:
    """The JSON document on the last line of ``stdout``."""
    return json.loads(stdout.strip().splitlines()[-1])


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


def stored_messages(db: Path) -> list[MessageRecord]:
    """Every message of the (only) campaign in ``db``."""
    store = open_store(db)
    try:
        [record] = store.list_campaigns()
        return store.messages(record.id, limit=100_000)
    finally:
        store.close()


def received(*sandboxes: Any) -> collections.Counter[str]:
    """How many times each recipient was accepted, over all the given sandboxes."""
    return collections.Counter(r for sb in sandboxes for m in sb.messages for r in m.rcpt_tos)


def assert_recovered(report: dict[str, Any], db: Path, *sandboxes: Any) -> None:
    """The campaign is finished: every message sent or failed (only `nouser…` ones fail), the
    sandbox got exactly the sent ones, duplicates only among messages reported uncertain, and the
    report's counts agree with the store."""
    messages = stored_messages(db)
    sent = {m.email for m in messages if m.state is MessageState.SENT}
    failed = {m.email for m in messages if m.state is MessageState.FAILED}
    uncertain = {m.email for m in messages if m.ever_uncertain}
    got = received(*sandboxes)
    assert report["state"] == "done"
    assert sent | failed == {m.email for m in messages}
    assert all(e.startswith("nouser") for e in failed)
    assert set(got) == sent
    assert {e for e, n in got.items() if n > 1} <= uncertain
    assert report["uncertain"] == len(uncertain)
    assert report["sent"] == len(sent) and report["failed"] == len(failed)
