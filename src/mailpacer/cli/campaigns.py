"""CLI commands on existing campaigns: ``status``, ``pause``, ``cancel``, ``resume``, ``retry``.

They open an existing database only (a mistyped ``--db`` is an error, not a new empty file);
``resume`` and ``retry`` run the engine in the foreground like ``send`` does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mailpacer.cli.remote_commands import (
    cancel_remote,
    pause_remote,
    resume_remote,
    retry_remote,
    server_option,
    status_remote,
)
from mailpacer.cli.send import (
    db_option,
    err,
    json_option,
    print_suppressed,
    run_engine,
    say_route_change,
)
from mailpacer.config.campaign import stored_route_keys
from mailpacer.core.errors import NotFound, UsageError
from mailpacer.core.route import parse_route
from mailpacer.core.states import CampaignState, MessageState
from mailpacer.delivery.runner import check, prepare, stored_settings
from mailpacer.pacing.pacer import Limits
from mailpacer.store import CampaignRecord, CampaignStats, Store, open_store


@click.command("status")
@click.argument("campaign", required=False)
@db_option
@server_option
@json_option
def status_command(campaign: str | None, db: str, server: str | None, as_json: bool) -> None:
    """Show every campaign, or one campaign in detail (of a service with --server)."""
    if server:
        status_remote(server, campaign, as_json)
        return
    path = _sqlite_file(db)
    if campaign is None and path is not None and not path.exists():
        if as_json:
            click.echo("[]")
        else:
            err.print(f"no campaigns yet (no database at {path})")
        return
    store = _open_existing(db)
    try:
        if campaign is None:
            rows = []
            for record in store.list_campaigns():
                stats = store.stats(record.id)
                rows.append((record, stats))
            if as_json:
                click.echo(
                    json.dumps(
                        [
                            {
                                "campaign": r.id,
                                "name": r.name,
                                "state": r.state.value,
                                "reason": r.reason,
                                **_counts(s),
                                "total": s.total,
                            }
                            for r, s in rows
                        ],
                        ensure_ascii=False,
                    )
                )
                return
            table = Table("id", "name", "state", "sent", "failed", "uncertain", "pending", "total")
            for r, s in rows:
                pending = (
                    s.counts[MessageState.QUEUED]
                    + s.counts[MessageState.DEFERRED]
                    + s.counts[MessageState.SENDING]
                )
                table.add_row(
                    str(r.id),
                    r.name,
                    r.state.value,
                    str(s.counts[MessageState.SENT]),
                    str(s.counts[MessageState.FAILED]),
                    str(s.uncertain_ever),
                    str(pending),
                    str(s.total),
                )
            Console().print(table)
            return
        record = store.get_campaign(_ref(campaign))
        stats = store.stats(record.id)
        limits = store.load_route_limits(record.route_key)
        failures = store.messages(record.id, state=MessageState.FAILED, limit=50)
        sent_by_route = store.sent_by_route(record.id)
        routes = []  #: every route of the campaign (several: a group), what each sent, learned
        for key in stored_route_keys(record.options) or (record.route_key,):
            learned = store.load_route_limits(key)
            routes.append(
                {
                    "route": key,
                    "sent": sent_by_route.get(key, 0),
                    "limits_text": Limits.from_dict(learned).describe() if learned else "",
                }
            )
        data = {
            "campaign": record.id,
            "name": record.name,
            "state": record.state.value,
            "reason": record.reason,
            "route": record.route_key,
            "total": stats.total,
            **_counts(stats),
            "limits": limits,
            "limits_text": Limits.from_dict(limits).describe() if limits else "",
            "failures": [
                {"email": m.email, "code": m.last_code, "reason": m.last_text} for m in failures
            ],
            "routes": routes,
        }
        if as_json:
            click.echo(json.dumps(data, ensure_ascii=False))
            return
        console = Console(soft_wrap=True)  # whole lines in files and pipes
        console.print(
            f"campaign {record.id} ({record.name}): [bold]{record.state.value}[/]"
            + (f" — {record.reason}" if record.reason else "")
        )
        console.print("  " + " · ".join(f"{k} {v}" for k, v in _counts(stats).items()))
        if len(routes) > 1:
            for route in routes:
                learned_text = f" — learned: {route['limits_text']}" if route["limits_text"] else ""
                console.print(f"  route {route['route']}: sent {route['sent']}{learned_text}")
        else:
            console.print(
                f"  route {record.route_key}"
                + (f" — learned: {data['limits_text']}" if limits else "")
            )
        for m in failures:
            console.print(f"  [red]failed[/] {m.email}: {m.last_code or ''} {m.last_text or ''}")
    finally:
        store.close()


def _counts(stats: CampaignStats) -> dict[str, int]:
    """Counts by state, named as in the send report: ``uncertain`` counts every message that was
    uncertain at some point (as ``send --json`` does), ``held`` those still held for review."""
    counts = {k.value: v for k, v in stats.counts.items()}
    counts["held"] = counts.pop(MessageState.UNCERTAIN.value)
    counts["uncertain"] = stats.uncertain_ever
    return counts


def _sqlite_file(db: str) -> Path | None:
    """The file a ``--db`` value names (a path or ``sqlite:///path``); None for other URLs."""
    if "://" not in db:
        return Path(db).expanduser()
    if db.lower().startswith("sqlite:///"):
        return Path("/" + db[len("sqlite:///") :].lstrip("/"))
    return None


def _open_existing(db: str) -> Store:
    """The store behind ``--db`` for commands on existing campaigns: a mistyped path is an
    error (exit 2), not a new empty database."""
    path = _sqlite_file(db)
    if path is not None and not path.exists():
        raise NotFound(
            f"no database at {path}: give --db PATH or set MAILPACER_DB "
            "(`mailpacer send` creates it)"
        )
    return open_store(db)


def _refuse_finished(record: CampaignRecord, action: str) -> None:
    """A ``done`` or ``cancelled`` campaign has nothing to pause or cancel (exit 2)."""
    if record.state in (CampaignState.DONE, CampaignState.CANCELLED):
        raise UsageError(
            f"campaign {record.id} is {record.state.value}: nothing to {action}"
            f" (`mailpacer retry {record.id}` sends failed or uncertain messages again)"
        )


def _ref(text: str) -> int | str:
    return int(text) if text.isdigit() else text


@click.command("pause")
@click.argument("campaign")
@db_option
@server_option
def pause_command(campaign: str, db: str, server: str | None) -> None:
    """Pause a campaign: its engine finishes in-flight messages and stops."""
    if server:
        pause_remote(server, campaign)
        return
    store = _open_existing(db)
    try:
        record = store.get_campaign(_ref(campaign))
        if record.state is CampaignState.PAUSED:
            err.print(f"campaign {record.id} is already paused ({record.reason or 'no reason'})")
            return
        _refuse_finished(record, "pause")
        store.set_campaign_state(record.id, CampaignState.PAUSED, "paused by user")
        err.print(f"campaign {record.id} paused; `mailpacer resume {record.id}` continues it")
    finally:
        store.close()


@click.command("cancel")
@click.argument("campaign")
@db_option
@server_option
def cancel_command(campaign: str, db: str, server: str | None) -> None:
    """Cancel a campaign: nothing new starts; in-flight messages finish and are recorded."""
    if server:
        cancel_remote(server, campaign)
        return
    store = _open_existing(db)
    try:
        record = store.get_campaign(_ref(campaign))
        if record.state is CampaignState.CANCELLED:
            err.print(f"campaign {record.id} is already cancelled")
            return
        _refuse_finished(record, "cancel")
        store.set_campaign_state(record.id, CampaignState.CANCELLED, "cancelled by user")
        store.cancel_pending(record.id)
        stats = _settled(store, record.id)
        counts = stats.counts
        line = (
            f"campaign {record.id} cancelled; {counts[MessageState.CANCELLED]} unsent messages "
            f"cancelled, {counts[MessageState.SENT]} sent, {counts[MessageState.FAILED]} failed"
        )
        if counts[MessageState.SENDING]:
            line += (
                f"; {counts[MessageState.SENDING]} still in flight in another process "
                f"(`mailpacer status {record.id}` shows how they end)"
            )
        err.print(line)
    finally:
        store.close()


#: how long ``cancel`` waits for a running send to finish its in-flight messages
SETTLE_SECONDS = 15.0


def _settled(store: Store, campaign_id: int, timeout: float = SETTLE_SECONDS) -> CampaignStats:
    """The campaign's counts once no message is ``sending`` any more (a running engine sees the
    cancel within its state poll, lets in-flight messages finish and cancels what it had claimed
    but not started), or after ``timeout`` seconds: the numbers printed are the final ones."""
    deadline = time.monotonic() + timeout
    while True:
        stats = store.stats(campaign_id)
        if stats.counts[MessageState.SENDING] == 0 or time.monotonic() >= deadline:
            # what the engine gave back unstarted (a step before it cancels it) is cancelled now
            if store.cancel_pending(campaign_id):
                stats = store.stats(campaign_id)
            return stats
        time.sleep(0.1)


def _continue(
    record_ref: str,
    db: str,
    as_json: bool,
    states: set[MessageState] | None,
    smtp: str | None = None,
) -> None:
    """Run a campaign again in the foreground: ``states`` (retry) are queued again first, which
    is what reopens a done or cancelled campaign; without them (resume) a finished campaign is
    refused and stays as it is."""
    store = _open_existing(db)
    try:
        record = store.get_campaign(_ref(record_ref))
        if not states:
            _refuse_resume(record)
        if states:
            count = store.retry(record.id, states)
            err.print(f"{count} message(s) queued again")
        if record.state in (CampaignState.DONE, CampaignState.CANCELLED):
            record = store.set_campaign_state(record.id, CampaignState.QUEUED, None)
        settings = stored_settings(record)
        if smtp is not None:
            settings = settings.with_route(parse_route(smtp, verify_tls=settings.route.verify_tls))
        checked = check(settings)
        prepared = prepare(store, settings, checked)
        print_suppressed(prepared)
        say_route_change(prepared)
        record = prepared.campaign
        report = run_engine(
            store, record, settings, prepared.composer, as_json=as_json, title=record.name
        )
    finally:
        store.close()
    sys.exit(report.exit_code)


def _refuse_resume(record: CampaignRecord) -> None:
    """``resume`` continues a paused or interrupted campaign; a done or cancelled one is
    refused (exit 2) and left as it is: reopening it is ``retry``'s explicit job."""
    if record.state is CampaignState.CANCELLED:
        raise UsageError(
            f"campaign {record.id} is cancelled: `resume` does not reopen it"
            f" (`mailpacer retry {record.id} --cancelled` queues its cancelled messages again)"
        )
    if record.state is CampaignState.DONE:
        raise UsageError(
            f"campaign {record.id} is done: nothing to resume"
            f" (`mailpacer retry {record.id}` sends failed or uncertain messages again)"
        )


@click.command("resume")
@click.argument("campaign")
@click.option(
    "--smtp",
    help="Continue through this route instead (e.g. after a wrong port); the password comes "
    "from MAILPACER_SMTP_PASSWORD as for send.",
)
@db_option
@server_option
@json_option
def resume_command(
    campaign: str, smtp: str | None, db: str, server: str | None, as_json: bool
) -> None:
    """Resume a paused (or interrupted) campaign in the foreground, with the settings of the
    send that started it (or through another route with --smtp); with --server the service
    resumes it and this follows it to its report."""
    if server:
        if smtp is not None:
            raise UsageError("--smtp: not with --server (routes are the service's)")
        resume_remote(server, campaign, as_json)
    _continue(campaign, db, as_json, None, smtp)


@click.command("delete")
@click.argument("campaign")
@click.option("--force", is_flag=True, help="Delete even a campaign that may be sending now.")
@db_option
def delete_command(campaign: str, force: bool, db: str) -> None:
    """Delete a campaign with its messages and their history (the suppression list stays)."""
    store = _open_existing(db)
    try:
        record = store.get_campaign(_ref(campaign))
        live = record.state in (CampaignState.RUNNING, CampaignState.WAITING)
        if live and not force:
            raise UsageError(
                f"campaign {record.id} is {record.state.value} (a process may be sending it):"
                f" `mailpacer pause {record.id}` first, or delete it with --force"
            )
        total = store.stats(record.id).total
        store.delete_campaign(record.id)
        err.print(f"campaign {record.id} ({record.name}) deleted with its {total} message(s)")
    finally:
        store.close()


@click.command("retry")
@click.argument("campaign")
@click.option("--failed", "which", flag_value="failed", help="Retry failed messages.")
@click.option(
    "--uncertain", "which", flag_value="uncertain", help="Retry uncertain messages held for review."
)
@click.option(
    "--cancelled",
    "which",
    flag_value="cancelled",
    help="Reopen a cancelled campaign: queue its cancelled messages again.",
)
@db_option
@server_option
@json_option
def retry_command(
    campaign: str, which: str | None, db: str, server: str | None, as_json: bool
) -> None:
    """Queue failed and/or uncertain (or, with --cancelled, cancelled) messages again and send
    them in the foreground; this is what reopens a done or cancelled campaign. With --server
    the service sends them and this follows the campaign to its report."""
    if server:
        retry_remote(server, campaign, which, as_json)
    states = {MessageState.FAILED, MessageState.UNCERTAIN}
    if which == "failed":
        states = {MessageState.FAILED}
    elif which == "uncertain":
        states = {MessageState.UNCERTAIN}
    elif which == "cancelled":
        states = {MessageState.CANCELLED}
    if not states:
        raise UsageError("nothing to retry")
    _continue(campaign, db, as_json, states)


COMMANDS = [
    status_command,
    pause_command,
    resume_command,
    cancel_command,
    retry_command,
    delete_command,
]
