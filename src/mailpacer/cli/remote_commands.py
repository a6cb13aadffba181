"""``send`` / ``status`` / ``pause`` / ``resume`` / ``cancel`` / ``retry`` with ``--server URL``:
the same commands, run by a ``mailpacer serve`` instead of this process.

``send`` uploads the recipients file and creates the campaign (templates and routes are the
service's named resources; a local template folder is uploaded as a zip), then follows its
events with the local progress bar and ends with the local report, ``--json`` line and exit code.
Ctrl-C stops following only: the campaign goes on on the service.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from mailpacer.cli.output import err, print_report
from mailpacer.cli.progress import ProgressView
from mailpacer.cli.remote import Remote, follow
from mailpacer.core.errors import UsageError

__all__ = [
    "cancel_remote",
    "pause_remote",
    "resume_remote",
    "retry_remote",
    "send_remote",
    "status_remote",
]

server_option = click.option(
    "--server",
    envvar="MAILPACER_SERVER",
    metavar="URL",
    help="Act on a running `mailpacer serve` at URL (token from $MAILPACER_API_TOKEN).",
)


def campaign_id(text: str) -> int:
    """A campaign as the service names it: its number."""
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"campaign {text!r}: with --server, give the campaign's number")
    return int(text)


def _finish(remote: Remote, cid: int, as_json: bool, title: str, act: Any = None) -> NoReturn:
    """Follow the campaign with the progress bar, print the report, exit with its code."""
    view = ProgressView(err, title) if not as_json else None
    try:
        if view is not None:
            with view:
                report = follow(remote, cid, view, act)
        else:
            report = follow(remote, cid, None, act)
    except KeyboardInterrupt:
        err.print(
            f"\nstopped following; campaign {cid} goes on on the service"
            f" (`mailpacer status {cid} --server {remote.url}`,"
            f" `mailpacer pause {cid} --server {remote.url}`)"
        )
        sys.exit(130)
    finally:
        remote.close()
    print_report(report, as_json=as_json)
    sys.exit(report.exit_code)


# -- send --------------------------------------------------------------------------------


def send_remote(
    server: str,
    recipients: Path,
    *,
    template: str,
    route: str | None,
    sender: str | None,
    name: str | None,
    priority: int,
    skip_invalid: bool,
    as_json: bool,
) -> NoReturn:
    """Create the campaign on the service (paused), follow its events, start it, report."""
    if not route:
        raise UsageError(
            "--server needs --route NAME: a route of the service's mailpacer.toml"
            " (`GET /api/routes`); its password stays on the server"
        )
    if not sender:
        raise UsageError("--server needs --from ADDRESS (or $MAILPACER_FROM)")
    try:
        body = recipients.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"{recipients}: cannot read the recipients file ({exc.strerror})"
        ) from None
    remote = Remote(server)
    try:
        template_name = remote.template_for(template)
        fields = {
            "template": template_name,
            "route": route,
            "sender": sender,
            "name": name or recipients.stem,
            "priority": str(priority),
            "skip_invalid": "true" if skip_invalid else "false",
            "start": "false",  # started once its event stream is open: no event is missed
        }
        key = hashlib.sha256(
            b"\0".join([body, *(f"{k}={v}".encode() for k, v in sorted(fields.items()))])
        ).hexdigest()
        made = remote.json(
            "POST",
            "/api/campaigns",
            data=fields,
            files={"recipients": (recipients.name, body, "text/csv")},
            headers={"Idempotency-Key": key},
        )
    except BaseException:
        remote.close()
        raise
    cid = int(made["id"])
    if made["total"] == 0:
        err.print(f"[yellow]warning:[/] campaign {cid} has no recipients")
    err.print(f"campaign {cid} ({made['name']}) on {remote.url}, route {route}")

    def start(snapshot: dict[str, Any]) -> dict[str, Any] | None:
        if snapshot["state"] != "paused":
            return None  # the same command again: the campaign runs (or ran) already
        started: dict[str, Any] = remote.json("POST", f"/api/campaigns/{cid}/resume")
        return started

    _finish(remote, cid, as_json, str(made["name"]), start)


# -- campaign commands -------------------------------------------------------------------


def status_remote(server: str, campaign: str | None, as_json: bool) -> None:
    """Every campaign of the service, or one in detail (as the local ``status`` prints)."""
    with Remote(server) as remote:
        if campaign is None:
            rows: list[dict[str, Any]] = remote.json("GET", "/api/campaigns")
            if as_json:
                click.echo(json.dumps([_summary(c) for c in rows], ensure_ascii=False))
                return
            table = Table("id", "name", "state", "sent", "failed", "uncertain", "pending", "total")
            for c in rows:
                s = _summary(c)
                pending = s["queued"] + s["deferred"] + s["sending"]
                cells = (s["name"], s["state"], s["sent"], s["failed"], s["uncertain"])
                table.add_row(str(c["id"]), *map(str, cells), str(pending), str(s["total"]))
            Console().print(table)
            return
        cid = campaign_id(campaign)
        record = remote.campaign(cid)
        failures = remote.failures(cid, limit=50)
    data = {
        **_summary(record),
        "route": record["route"],
        "limits": record.get("limits", {}),
        "limits_text": record.get("limits_text", ""),
        "failures": [
            {"email": m["email"], "code": m["last_code"], "reason": m["last_text"]}
            for m in failures
        ],
    }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    console = Console(soft_wrap=True)
    console.print(
        f"campaign {cid} ({record['name']}): [bold]{record['state']}[/]"
        + (f" — {record['reason']}" if record.get("reason") else "")
    )
    counts = {k: v for k, v in data.items() if k in _COUNT_KEYS}
    console.print("  " + " · ".join(f"{k} {v}" for k, v in counts.items()))
    learned = f" — learned: {data['limits_text']}" if data["limits_text"] else ""
    console.print(f"  route {record['route']}{learned}")
    for m in failures:
        console.print(
            f"  [red]failed[/] {m['email']}: {m['last_code'] or ''} {m['last_text'] or ''}"
        )


_COUNT_KEYS = ("queued", "sending", "sent", "deferred", "failed", "held", "cancelled", "uncertain")


def _summary(campaign: dict[str, Any]) -> dict[str, Any]:
    """The fields the local ``status --json`` has: counts named as in the send report."""
    counts = dict(campaign.get("counts", {}))
    counts["held"] = counts.pop("uncertain", 0)
    counts["uncertain"] = campaign.get("uncertain_ever", 0)
    return {
        "campaign": campaign["id"],
        "name": campaign["name"],
        "state": campaign["state"],
        "reason": campaign.get("reason"),
        **{k: counts.get(k, 0) for k in _COUNT_KEYS},
        "total": campaign["total"],
    }


def pause_remote(server: str, campaign: str) -> None:
    """Pause on the service: it answers once in-flight messages are recorded."""
    cid = campaign_id(campaign)
    with Remote(server) as remote:
        before = remote.campaign(cid)
        if before["state"] == "paused":
            err.print(f"campaign {cid} is already paused ({before.get('reason') or 'no reason'})")
            return
        remote.json("POST", f"/api/campaigns/{cid}/pause")
    err.print(f"campaign {cid} paused; `mailpacer resume {cid} --server {server}` continues it")


def cancel_remote(server: str, campaign: str) -> None:
    """Cancel on the service: when it answers no message of the campaign is on the wire."""
    cid = campaign_id(campaign)
    with Remote(server) as remote:
        if remote.campaign(cid)["state"] == "cancelled":
            err.print(f"campaign {cid} is already cancelled")
            return
        counts = remote.json("POST", f"/api/campaigns/{cid}/cancel")["counts"]
    err.print(
        f"campaign {cid} cancelled; {counts['cancelled']} unsent messages cancelled,"
        f" {counts['sent']} sent, {counts['failed']} failed"
    )


def resume_remote(server: str, campaign: str, as_json: bool) -> NoReturn:
    """Resume on the service and follow the campaign to its report."""
    cid = campaign_id(campaign)
    remote = Remote(server)

    def resume(snapshot: dict[str, Any]) -> dict[str, Any] | None:
        if snapshot["state"] == "done":
            raise UsageError(
                f"campaign {cid} is done: nothing to resume"
                f" (`mailpacer retry {cid} --server {server}` sends failed or uncertain again)"
            )
        if snapshot["state"] == "cancelled":
            raise UsageError(
                f"campaign {cid} is cancelled: `resume` does not reopen it"
                f" (`mailpacer retry {cid} --server {server}` queues failed messages again)"
            )
        if snapshot["state"] != "paused":
            return None  # running or queued: follow it
        resumed: dict[str, Any] = remote.json("POST", f"/api/campaigns/{cid}/resume")
        return resumed

    _finish(remote, cid, as_json, f"campaign {cid}", resume)


def retry_remote(server: str, campaign: str, which: str | None, as_json: bool) -> NoReturn:
    """Queue failed and/or uncertain messages again on the service, follow to the report."""
    if which == "cancelled":
        raise UsageError("--cancelled is not offered by the service; retry --failed/--uncertain")
    cid = campaign_id(campaign)
    body = {"failed": which in (None, "failed"), "uncertain": which in (None, "uncertain")}
    remote = Remote(server)

    def retry(snapshot: dict[str, Any]) -> dict[str, Any] | None:
        answer = remote.json("POST", f"/api/campaigns/{cid}/retry", json=body)
        err.print(f"{answer['queued']} message(s) queued again")
        campaign: dict[str, Any] = answer["campaign"]
        return campaign

    act: Callable[[dict[str, Any]], dict[str, Any] | None] = retry
    _finish(remote, cid, as_json, f"campaign {cid}", act)
