"""``mailpacer config check`` and ``config presets`` as a user runs them (a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "mailpacer.toml"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILPACER_")}
    return subprocess.run(
        [sys.executable, "-m", "mailpacer", "config", *args],
        cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_good_file_exits_zero_and_never_prints_the_password(tmp_path: Path) -> None:
    """A valid file with its password set: exit 0, routes listed, the password is not shown."""
    (tmp_path / "mailpacer.toml").write_text(
        "[defaults]\nfrom = 'HR <hr@example.com>'\n\n"
        "[routes.office]\nprovider = 'office365'\nusername = 'hr@example.com'\n"
        "password_env = 'OFFICE_PW'\n",
        encoding="utf-8",
    )
    result = run("check", cwd=tmp_path, env={"OFFICE_PW": "s3cret-value"})
    assert result.returncode == 0, result.stderr
    assert "route office (default): smtp+starttls://" in result.stdout
    assert "3 connections · 30/min · 10,000 per day" in result.stdout
    assert "$OFFICE_PW (set)" in result.stdout
    assert "s3cret-value" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "config: mailpacer.toml is valid"


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    """examples/mailpacer.toml passes `config check` once its passwords are set."""
    names = ("OFFICE365_SMTP_PASSWORD", "GMAIL_APP_PASSWORD", "SES_SMTP_PASSWORD", "RELAY_PASSWORD")
    env = dict.fromkeys(names, "x")
    result = run("check", "--config", str(EXAMPLE), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "rules: 2 user rule(s)" in result.stdout


def test_unknown_key_exits_non_zero_naming_key_and_line(tmp_path: Path) -> None:
    """An unknown key: exit non-zero, stderr names file, dotted key and line."""
    path = tmp_path / "custom.toml"
    path.write_text("[routes.office]\nprovider = 'office365'\n\nmax_conections = 3\n")
    result = run("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:4: routes.office.max_conections: unknown key" in result.stderr
    assert "did you mean 'max_connections'?" in result.stderr


def test_wrong_type_from_environment_config_path(tmp_path: Path) -> None:
    """$MAILPACER_CONFIG is used; a wrong type names the key and its line."""
    path = tmp_path / "other.toml"
    path.write_text("[defaults]\ncheck_dns = 'yes'\n")
    result = run("check", cwd=tmp_path, env={"MAILPACER_CONFIG": str(path)})
    assert result.returncode == 2
    assert f"{path}:2: defaults.check_dns: expected true or false" in result.stderr


def test_missing_password_says_which_variable_to_set(tmp_path: Path) -> None:
    """A route whose password variable is unset: exit non-zero, the variable is named, and the
    output never calls the file valid (issue 14.8)."""
    (tmp_path / "mailpacer.toml").write_text(
        "[routes.mail]\nprovider = 'exmail'\nusername = 'hr@example.com'\n"
        "password_env = 'EXMAIL_PW'\n"
    )
    result = run("check", cwd=tmp_path)
    assert result.returncode == 2
    assert "$EXMAIL_PW (NOT SET)" in result.stdout
    assert "route 'mail' (exmail) needs a password: set EXMAIL_PW" in result.stderr
    # issue 14.8: no "(valid)" above the errors; the verdict is the last line
    assert "valid" not in result.stdout
    assert result.stderr.splitlines()[-1].endswith("mailpacer.toml has 1 problem(s)")


def test_no_config_file_says_where_it_looked(tmp_path: Path) -> None:
    """Without any config file, check explains the three places it looks."""
    result = run("check", cwd=tmp_path)
    assert result.returncode == 2
    assert "--config PATH" in result.stderr and "MAILPACER_CONFIG" in result.stderr


def test_presets_lists_limits_and_sources(tmp_path: Path) -> None:
    """`config presets` prints every preset with its endpoint, ceilings and source."""
    result = run("presets", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    blocks = {b.split(" — ")[0]: b for b in result.stdout.split("\n") if " — " in b}
    for name in ("office365", "gmail", "google-workspace", "exmail", "netease", "aliyun", "ses"):
        assert name in blocks
    office = result.stdout.split("office365 — ")[1].split("\n\n")[0]
    assert "smtp+starttls://smtp.office365.com:587" in office
    assert "ceilings: 3 connections · 30/min · 10,000 per day" in office
    assert "source: Microsoft Learn, 'Exchange Online limits'" in office
