"""The CLI as a client of a running ``mailpacer serve`` (``--server URL``): a real uvicorn on
127.0.0.1, the sandbox, real SQLite files; the CLI runs as a subprocess, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import (
    ENV,
    SENDER,
    TEMPLATE,
    TOKEN,
    Served,
    create,
    free_port,
    recipients,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def serve(tmp_path: Path, sandbox: Any) -> Iterator[Callable[..., tuple[Served, Any]]]:
    """Start ``serve`` on a new sandbox (profile and overrides as ``sandbox``) with the
    ``hello`` template; stopped at teardown."""
    started: list[Served] = []

    def start(profile: str = "strict", **overrides: Any) -> tuple[Served, Any]:
        sb = sandbox(profile, **overrides)
        served = Served(tmp_path, write_config(tmp_path, sb)).start()
        started.append(served)
        with served.client() as client:
            assert client.post("/api/templates", json=TEMPLATE).status_code == 201
        return served, sb

    yield start
    for served in started:
        served.stop()


def cli(
    *args: str | Path, cwd: Path, token: str | None = TOKEN, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (bounded) with ``MAILPACER_API_TOKEN`` set to ``token``."""
    env = {**ENV, **({"MAILPACER_API_TOKEN": token} if token else {})}
    return subprocess.run(
        [sys.executable, "-m", "mailpacer", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def write_list(folder: Path, rows: list[dict[str, str]], name: str = "staff.csv") -> Path:
    """``rows`` as a CSV file."""
    path = folder / name
    lines = ["email,name,code", *(f"{r['email']},{r['name']},{r['code']}" for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_template(folder: Path) -> Path:
    """A local template folder (one language, text body)."""
    root = folder / "hello-template"
    (root / "en").mkdir(parents=True)
    (root / "en" / "subject.txt").write_text("Hello {{ name }}\n", encoding="utf-8")
    (root / "en" / "body.txt").write_text("Dear {{ name }}, your code is {{ code }}.\n", "utf-8")
    return root


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` report line."""
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def test_send_through_the_server_reports_as_a_local_send(
    serve: Any, sandbox: Any, tmp_path: Path
) -> None:
    """A local template folder and CSV sent with ``--server``: the same exit code and ``--json``
    fields and counts as a local ``send`` of the same input; running the command again continues
    the same campaign (nothing is sent twice)."""
    served, sb = serve()
    template = write_template(tmp_path)
    staff = write_list(tmp_path, recipients(30, nouser=2))
    args = ("send", staff, "--template", template, "--from", SENDER, "--json")
    remote = cli(*args, "--server", served.url, "--route", "sandbox", cwd=tmp_path)
    assert remote.returncode in (0, 1), remote.stderr
    remote_report = report(remote)
    assert remote_report["sent"] == 28 and remote_report["failed"] == 2
    assert {f["email"] for f in remote_report["failures"]} == {
        "nouser0@example.com",
        "nouser1@example.com",
    }
    assert len({m.message_id for m in sb.messages}) == 28 == len(sb.messages)

    local_sb = sandbox("strict")
    local = cli(
        *args, "--smtp", f"smtp://{local_sb.host}:{local_sb.port}", "--db", tmp_path / "l.db",
        cwd=tmp_path, token=None,
    )  # fmt: skip
    local_report = report(local)
    assert remote.returncode == local.returncode
    assert set(remote_report) == set(local_report)
    for key in ("sent", "failed", "uncertain", "cancelled", "total", "state", "exit_code"):
        assert remote_report[key] == local_report[key], key

    again = cli(*args, "--server", served.url, "--route", "sandbox", cwd=tmp_path)
    assert report(again)["campaign"] == remote_report["campaign"]
    assert again.returncode == remote.returncode and len(sb.messages) == 28


def test_send_through_the_server_shows_progress_and_the_report(serve: Any, tmp_path: Path) -> None:
    """Without ``--json``: the service's template by name, the progress bar and the local
    report's lines on stderr, exit 0 when every message is sent."""
    served, _sb = serve()
    staff = write_list(tmp_path, recipients(20))
    result = cli(
        "send", staff, "--template", "hello", "--route", "sandbox", "--from", SENDER,
        "--server", served.url, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sent 20/20 · failed 0" in result.stderr and ": done" in result.stderr
    assert "20/20" in result.stderr and result.stdout == ""


def test_errors_say_what_and_where(serve: Any, tmp_path: Path) -> None:
    """Unreachable service: exit 6; a wrong or missing token: exit 2 naming the variable; a
    CSV with a bad address: exit 3 naming file, row and column, and no campaign is created;
    local-only flags with ``--server``: exit 2."""
    served, _sb = serve()
    good = write_list(tmp_path, recipients(3))
    base = ("--template", "hello", "--route", "sandbox", "--from", SENDER)

    nobody = cli("send", good, *base, "--server", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert nobody.returncode == 6 and "cannot be reached" in nobody.stderr

    for token in ("wrong-token", None):
        refused = cli("send", good, *base, "--server", served.url, cwd=tmp_path, token=token)
        assert refused.returncode == 2 and "MAILPACER_API_TOKEN" in refused.stderr
        assert "401" in refused.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("email,name,code\na@example.com,A,1\nnot-an-address,B,2\n", encoding="utf-8")
    invalid = cli("send", bad, *base, "--server", served.url, cwd=tmp_path)
    assert invalid.returncode == 3, invalid.stderr
    assert "row 2" in invalid.stderr and "nothing was sent" in invalid.stderr

    unknown = cli("send", good, *base[:2], "--route", "nope", "--from", SENDER,
                  "--server", served.url, cwd=tmp_path)  # fmt: skip
    assert unknown.returncode == 3 and "no such route" in unknown.stderr

    local_only = cli("send", good, *base, "--server", served.url, "--smtp", "smtp://x:25",
                     cwd=tmp_path)  # fmt: skip
    assert local_only.returncode == 2 and "--smtp" in local_only.stderr
    with served.client() as client:
        assert client.get("/api/campaigns").json() == []


def test_campaign_commands_with_server(serve: Any, tmp_path: Path) -> None:
    """``status``, ``pause``, ``resume``, ``cancel`` and ``retry`` with ``--server`` act on
    the service's campaigns: resume and retry follow the run to its report and exit code."""
    served, sb = serve()
    with served.client() as client:
        first = create(client, recipients(12, nouser=1), start=False)["id"]
        second = create(client, recipients(5, prefix="x"), start=False)["id"]
    at = ("--server", served.url)

    listed = cli("status", "--json", *at, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert {c["campaign"]: c["state"] for c in json.loads(listed.stdout)} == {
        first: "paused",
        second: "paused",
    }
    assert "already paused" in cli("pause", str(first), *at, cwd=tmp_path).stderr

    resumed = cli("resume", str(first), "--json", *at, cwd=tmp_path)
    assert report(resumed)["sent"] == 11 and report(resumed)["failed"] == 1
    assert resumed.returncode in (0, 1) and len(sb.messages) == 11

    retried = cli("retry", str(first), "--failed", "--json", *at, cwd=tmp_path)
    assert "1 message(s) queued again" in retried.stderr
    assert report(retried)["failed"] == 1 and report(retried)["state"] == "done"

    cancelled = cli("cancel", str(second), *at, cwd=tmp_path)
    assert cancelled.returncode == 0 and "5 unsent messages cancelled" in cancelled.stderr
    one = json.loads(cli("status", str(second), "--json", *at, cwd=tmp_path).stdout)
    assert one["state"] == "cancelled" and one["cancelled"] == 5
    again = cli("resume", str(second), *at, cwd=tmp_path)
    assert again.returncode != 0 and len(sb.messages) == 11
    missing = cli("status", "999", *at, cwd=tmp_path)
    assert missing.returncode == 2 and "999" in missing.stderr
