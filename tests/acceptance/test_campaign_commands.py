"""`status`, `pause`, `cancel`, `resume` on a database or campaign that is not what the user
thinks: a clear error and exit 2, never a traceback, a store error or a new empty database."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from send_helpers import copy_campaign, last_json, mailpacer, run, send_args

from mailpacer.sandbox import Sandbox, get_profile


def test_commands_on_a_mistyped_database_create_nothing(tmp_path: Path) -> None:
    """A --db that does not exist: `status` says there are no campaigns yet (`[]` with --json),
    the commands on one campaign fail with exit 2 naming the path; no file or folder appears."""
    db = tmp_path / "typo" / "mp.db"
    listing = mailpacer("status", "--db", db, cwd=tmp_path)
    assert listing.returncode == 0 and f"no campaigns yet (no database at {db})" in listing.stderr
    as_json = mailpacer("status", "--db", db, "--json", cwd=tmp_path)
    assert as_json.returncode == 0 and last_json(as_json.stdout) == []
    for command in (["status", "1"], ["pause", "1"], ["cancel", "1"], ["resume", "1"]):
        result = mailpacer(*command, "--db", db, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert f"error: no database at {db}: give --db PATH or set MAILPACER_DB" in result.stderr
    assert not db.parent.exists()


def test_pause_or_cancel_a_finished_campaign(tmp_path: Path, sandbox: Any) -> None:
    """A done campaign cannot be paused or cancelled: exit 2 with the campaign's state and what
    to do instead (not exit 5 with the store's transition error); an unknown id is exit 2."""
    campaign = copy_campaign(tmp_path, rows=5)
    db = tmp_path / "mp.db"
    sb = sandbox("unlimited")
    done = run(send_args(sb, campaign, db), tmp_path)
    assert done.returncode == 0, done.stderr
    for action in ("pause", "cancel"):
        result = mailpacer(action, "1", "--db", db, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"error: campaign 1 is done: nothing to {action} (`mailpacer retry 1`" in (
            result.stderr
        )
    unknown = mailpacer("pause", "7", "--db", db, cwd=tmp_path)
    assert unknown.returncode == 2 and "error: no campaign 7" in unknown.stderr
    status = last_json(mailpacer("status", "1", "--db", db, "--json", cwd=tmp_path).stdout)
    assert status["state"] == "done" and status["sent"] == 5


def test_resume_leaves_a_cancelled_campaign_cancelled(tmp_path: Path, unused_port: int) -> None:
    """Issue 14.1: `resume` on a cancelled campaign is refused (exit 2, says how to reopen it)
    and the campaign stays cancelled with nothing sent; `retry ID --cancelled` is the explicit
    way back, and it then sends every message."""
    campaign = copy_campaign(tmp_path, rows=6)
    db = tmp_path / "mp.db"
    nowhere = SimpleNamespace(host="127.0.0.1", port=unused_port)
    args = send_args(nowhere, campaign, db)  # nothing listens yet: the route fails, paused
    assert run(args, tmp_path).returncode == 4
    cancelled = mailpacer("cancel", "1", "--db", db, cwd=tmp_path)
    assert cancelled.returncode == 0, cancelled.stderr
    resumed = mailpacer("resume", "1", "--db", db, cwd=tmp_path)
    assert resumed.returncode == 2, resumed.stderr
    assert "error: campaign 1 is cancelled: `resume` does not reopen it" in resumed.stderr
    assert "mailpacer retry 1 --cancelled" in resumed.stderr
    status = last_json(mailpacer("status", "1", "--db", db, "--json", cwd=tmp_path).stdout)
    assert (status["state"], status["cancelled"], status["sent"]) == ("cancelled", 6, 0)
    with Sandbox(get_profile("unlimited"), port=unused_port) as sb:
        reopened = mailpacer("retry", "1", "--cancelled", "--db", db, "--json", cwd=tmp_path)
        assert reopened.returncode == 0, reopened.stderr
        report = last_json(reopened.stdout)
        assert (report["state"], report["cancelled"], report["sent"]) == ("done", 0, 6)
        assert len(sb.messages) == 6


def test_a_rerun_through_the_right_route_continues_the_same_campaign(
    tmp_path: Path, unused_port: int, sandbox: Any
) -> None:
    """Issue 14.4: a send through a wrong port fails (exit 4, paused); the same send with the
    right port continues campaign 1 (no second campaign), says which route it now uses, and
    finishes; `status` lists one campaign."""
    campaign = copy_campaign(tmp_path, rows=5)
    db = tmp_path / "mp.db"
    wrong = SimpleNamespace(host="127.0.0.1", port=unused_port)
    assert run(send_args(wrong, campaign, db), tmp_path).returncode == 4
    sb = sandbox("unlimited")
    done = run(send_args(sb, campaign, db), tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"continues through smtp://{sb.host}:{sb.port}" in done.stderr
    assert f"it was sending through smtp://127.0.0.1:{unused_port}" in done.stderr
    report = last_json(done.stdout)
    assert (report["campaign"], report["state"], report["sent"]) == (1, "done", 5)
    listed = last_json(mailpacer("status", "--db", db, "--json", cwd=tmp_path).stdout)
    assert [c["campaign"] for c in listed] == [1]


def test_resume_through_another_route_then_delete(
    tmp_path: Path, unused_port: int, sandbox: Any
) -> None:
    """Issue 14.4: `resume ID --smtp URL` continues a campaign through another route;
    `delete` refuses a campaign that may be sending (running) unless --force, and removes a
    finished one with its messages."""
    campaign = copy_campaign(tmp_path, rows=4)
    db = tmp_path / "mp.db"
    wrong = SimpleNamespace(host="127.0.0.1", port=unused_port)
    assert run(send_args(wrong, campaign, db), tmp_path).returncode == 4
    sb = sandbox("unlimited")
    url = f"smtp://{sb.host}:{sb.port}"
    resumed = mailpacer("resume", "1", "--smtp", url, "--db", db, "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (last_json(resumed.stdout)["sent"], len(sb.messages)) == (4, 4)
    deleted = mailpacer("delete", "1", "--db", db, cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert "campaign 1 (workers) deleted with its 4 message(s)" in deleted.stderr
    assert last_json(mailpacer("status", "--db", db, "--json", cwd=tmp_path).stdout) == []
    assert mailpacer("delete", "1", "--db", db, cwd=tmp_path).returncode == 2


def test_delete_refuses_a_running_campaign(tmp_path: Path) -> None:
    """A campaign that may be sending in another process is not deleted without --force."""
    from mailpacer.core.states import CampaignState
    from mailpacer.store import open_store

    db = tmp_path / "mp.db"
    store = open_store(db)
    record, _ = store.get_or_create_campaign("k", name="live", route_key="r", options={})
    store.set_campaign_state(record.id, CampaignState.RUNNING)
    store.close()
    refused = mailpacer("delete", "1", "--db", db, cwd=tmp_path)
    assert refused.returncode == 2
    assert "campaign 1 is running" in refused.stderr and "--force" in refused.stderr
    forced = mailpacer("delete", "1", "--db", db, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
