"""`status`, `pause`, `cancel`, `resume` on a database or campaign that is not what the user
thinks: a clear error and exit 2, never a traceback, a store error or a new empty database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from send_helpers import copy_campaign, last_json, mailpacer, run, send_args


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
