"""`mailpacer send` with several `--smtp`: one campaign spread over a group of routes, as a user
runs it (the real CLI, real sandboxes, a real SQLite file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from send_helpers import copy_campaign, last_json, mailpacer, received, run, send_args, smtp_url


def test_send_through_two_routes_reports_what_each_sent(tmp_path: Path, sandbox: Any) -> None:
    """`--smtp A --smtp B`: every recipient is sent once, through one of them; the JSON line,
    the terminal report and `status` say how many each route sent and what each learned."""
    campaign = copy_campaign(tmp_path, rows=60)
    db = tmp_path / "mp.db"
    one, two = sandbox("strict"), sandbox("strict")
    args = send_args(one, campaign, db, "--smtp", smtp_url(two))
    result = run(args, tmp_path)
    assert result.returncode == 0, result.stderr
    report = last_json(result.stdout)
    assert (report["sent"], report["failed"]) == (59, 1)  # one `nouser…` in the first 60
    routes = {r["route"]: r for r in report["routes"]}
    assert list(routes) == [smtp_url(one), smtp_url(two)]
    assert routes[smtp_url(one)]["sent"] == sum(received(one).values())
    assert routes[smtp_url(two)]["sent"] == sum(received(two).values())
    assert routes[smtp_url(one)]["sent"] > 0 and routes[smtp_url(two)]["sent"] > 0
    assert not set(received(one)) & set(received(two))  # nobody got it twice
    assert all(r["error"] is None for r in report["routes"])

    status = mailpacer("status", str(report["campaign"]), "--db", db, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    for key, route in routes.items():
        assert f"route {key}: sent {route['sent']}" in status.stdout

    again = [a for a in args[3:] if a != "--json"]  # the same command again, for a person
    human = mailpacer(*again, cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert f"route {smtp_url(one)}: sent {routes[smtp_url(one)]['sent']}" in human.stderr


def test_the_same_route_twice_is_refused(tmp_path: Path, sandbox: Any) -> None:
    """`--smtp A --smtp A`: exit 2 with the reason, nothing stored or sent."""
    campaign = copy_campaign(tmp_path, rows=5)
    db = tmp_path / "mp.db"
    sb = sandbox("strict")
    result = run(send_args(sb, campaign, db, "--smtp", smtp_url(sb)), tmp_path)
    assert result.returncode == 2
    assert "is given twice" in result.stderr
    assert not db.exists() and not sb.messages
