"""CLI commands for campaigns: ``send``, ``status``, ``pause``, ``resume``, ``cancel``, ``retry``.

The contract is DESIGN §7. Long work runs in the foreground with a progress bar; the first Ctrl-C
(or SIGTERM) lets in-flight messages finish and be recorded, a second one exits at once (the next
run recovers what was in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mailpacer.classify import rules_with
from mailpacer.engine import Engine
from mailpacer.errors import NotFound, UsageError
from mailpacer.events import Observer
from mailpacer.pacer import Limits
from mailpacer.progress import ProgressView
from mailpacer.report import Report
from mailpacer.runner import (
    SendSettings,
    check,
    default_db,
    engine_for,
    envelope_address,
    prepare,
    settings_from_campaign,
)
from mailpacer.settings import load_settings
from mailpacer.states import CampaignState, MessageState
from mailpacer.store import CampaignRecord, CampaignStats, Store, open_store

err = Console(stderr=True, soft_wrap=True)  # log files get whole lines, not 80 columns

db_option = click.option(
    "--db",
    default=default_db,
    show_default="$MAILPACER_DB or ~/.local/share/mailpacer/mailpacer.db",
    help="SQLite file (or sqlite:///path) holding campaigns.",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON report line on stdout."
)


def _run_engine(engine: Engine, store: Store, *, as_json: bool, title: str) -> Report:
    """Run the engine with a progress bar and Ctrl-C handling; print and return the report."""
    observers: list[Observer] = []
    view = ProgressView(err, title) if not as_json else None
    if view is not None:
        observers.append(view)
    for observer in observers:
        engine.events.subscribe(observer)

    async def main() -> Report:
        loop = asyncio.get_running_loop()
        presses = 0

        def interrupt(sig: signal.Signals) -> None:
            nonlocal presses
            presses += 1
            if presses == 1:
                err.print(
                    "[yellow]stopping: in-flight messages finish and are recorded "
                    "(Ctrl-C again to quit at once)[/]"
                )
                engine.stop("interrupted; run the same command again to continue")
                return
            _quit_at_once(sig, view, engine, store)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, interrupt, sig)
        return await engine.run()

    if view is not None:
        with view:
            report = asyncio.run(main())
    else:
        report = asyncio.run(main())
    _print_report(report, as_json=as_json)
    return report


def _quit_at_once(
    sig: signal.Signals, view: ProgressView | None, engine: Engine, store: Store
) -> None:
    """The second Ctrl-C: say so on stderr and exit now (128 + the signal number). Outcomes
    already known are written first; messages in flight stay ``sending``, and the next run finds
    their process gone and recovers them as uncertain (resent with the same Message-ID)."""
    if view is not None:
        with contextlib.suppress(Exception):  # leave the terminal usable whatever happens
            view.stop()
    print(
        f"mailpacer: {sig.name} again: quit at once; messages that were in flight are "
        "recovered as uncertain when you run the same command again",
        file=sys.stderr,
        flush=True,
    )
    with contextlib.suppress(Exception):
        engine.flush()
        store.close()
    os._exit(128 + sig.value)


def _print_report(report: Report, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    err.print(
        f"campaign {report.campaign} ({report.name}): [bold]{report.state}[/]"
        + (f" — {report.reason}" if report.reason else "")
    )
    err.print(
        f"  sent {report.sent}/{report.total} · failed {report.failed}"
        f" · uncertain {report.uncertain}"
        f" · deferred {report.deferred} · queued {report.queued} · cancelled {report.cancelled}"
    )
    err.print(
        f"  this run: {report.sent_this_run} sent in {report.seconds:.1f} s "
        f"({report.throughput:.1f} msg/s), {report.throttles} throttle replies"
    )
    if report.limits_text:
        err.print(f"  learned: {report.limits_text}")
    for failure in report.failures[:20]:
        err.print(f"  [red]failed[/] {failure.email}: {failure.code or ''} {failure.reason}")
    if len(report.failures) > 20:
        err.print(f"  … and {len(report.failures) - 20} more (mailpacer status {report.campaign})")


@click.command("send")
@click.argument("recipients", type=click.Path(path_type=Path))
@click.option(
    "--template", "template", required=True, type=click.Path(path_type=Path), help="Template dir."
)
@click.option(
    "--smtp", help="smtp://host:port, smtp+starttls://user@host:587, smtps://user@host:465"
)
@click.option("--route", "route_name", help="A route from mailpacer.toml.")
@click.option("--provider", help="A provider preset (see `mailpacer config presets`).")
@click.option("--username", help="Username for --provider.")
@click.option("--region", help="Region for presets that need one (ses).")
@click.option("--from", "sender", help="Sender, e.g. 'HR <hr@example.com>'.")
@click.option("--config", type=click.Path(dir_okay=False), help="mailpacer.toml to use.")
@click.option(
    "--db", default=None, help="SQLite file (default: $MAILPACER_DB or the user data dir)."
)
@click.option("--max-connections", type=click.IntRange(min=1), help="Ceiling on connections.")
@click.option("--max-rate", help="Hard ceiling on the rate, e.g. 120/min or 2/s.")
@click.option("--insecure-tls", is_flag=True, help="Do not verify the certificate (sandbox only).")
@click.option("--cafile", type=click.Path(exists=True, dir_okay=False), help="Trust this CA.")
@click.option("--skip-invalid", is_flag=True, help="Send the valid recipients and list the rest.")
@click.option("--check-dns", is_flag=True, help="Check that recipient domains accept mail (DNS).")
@click.option(
    "--hold-uncertain", is_flag=True, help="Hold uncertain messages instead of resending."
)
@click.option("--dry-run", is_flag=True, help="Validate and render every message; send nothing.")
@click.option("--name", help="Campaign name (default: the recipients file's name).")
@json_option
def send_command(
    recipients: Path,
    template: Path,
    smtp: str | None,
    route_name: str | None,
    provider: str | None,
    username: str | None,
    region: str | None,
    sender: str | None,
    config: str | None,
    db: str | None,
    max_connections: int | None,
    max_rate: str | None,
    insecure_tls: bool,
    cafile: str | None,
    skip_invalid: bool,
    check_dns: bool,
    hold_uncertain: bool,
    dry_run: bool,
    name: str | None,
    as_json: bool,
) -> None:
    """Send RECIPIENTS (CSV) with a template through an SMTP server, as fast as it allows.

    Flags win over MAILPACER_* variables, which win over mailpacer.toml. Re-running the same
    command continues the same campaign.

    \b
    Exit codes:
      0    every deliverable message was sent
      1    something is left (paused, cancelled, deferred, held) or gave up after retries
      2    a bad flag, URL, address or config value; nothing was started
      3    bad campaign input (recipients, template, attachments); nothing was sent
      4    the route failed (unreachable, TLS, password): campaign paused, no message failed
      5    the database cannot be used
      130  a second Ctrl-C quit at once (143: a second SIGTERM)
    """
    resolved = load_settings(
        {
            "config": config,
            "db": db,
            "from": sender,
            "smtp": smtp,
            "route": route_name,
            "provider": provider,
            "username": username,
            "region": region,
            "max_connections": max_connections,
            "max_rate": max_rate,
            "insecure_tls": insecure_tls,
            "cafile": cafile,
            "check_dns": check_dns,
            "hold_uncertain": hold_uncertain,
        }
    )
    route = resolved.require_route()
    sender = resolved.require_sender()
    envelope_address(sender, source=_source(resolved.origins.get("from", "flag --from")))
    settings = SendSettings(
        recipients=recipients,
        template=template,
        route=route,
        sender=sender,
        db=resolved.db,
        ceilings=resolved.ceilings,
        skip_invalid=skip_invalid,
        check_dns=resolved.check_dns,
        resend_uncertain=resolved.resend_uncertain,
        retry=resolved.retry,
        name=name,
    )
    checked = check(settings)
    for warning in checked.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    for problem in checked.problems:  # only with --skip-invalid: reported, not sent
        err.print(f"[yellow]skipped:[/] {problem}")
    if dry_run:
        _dry_run(settings, checked.skip_rows, as_json=as_json)
        return
    store = open_store(settings.db)
    try:
        campaign, composer = prepare(store, settings, checked)
        engine = engine_for(store, campaign, composer, settings, rules=rules_with(resolved.rules))
        report = _run_engine(engine, store, as_json=as_json, title=campaign.name)
    finally:
        store.close()
    sys.exit(report.exit_code)


def _source(origin: str) -> str:
    """Where a setting came from, as an error names it: ``--from``, ``MAILPACER_FROM``, or
    ``mailpacer.toml:3: defaults.from``."""
    kind, _, where = origin.partition(" ")
    if kind == "file":
        return f"{where}: defaults.from"
    return where or origin


def _dry_run(settings: SendSettings, skip_rows: frozenset[int], *, as_json: bool) -> None:
    from mailpacer.compose import Composer, iter_recipients, load_template

    composer = Composer(
        load_template(settings.template),
        sender=settings.sender,
        campaign_key=settings.campaign_key(),
        base_dir=settings.recipients.resolve().parent,
    )
    started = time.perf_counter()
    count = size = 0
    for recipient in iter_recipients(settings.recipients, skip_rows=skip_rows):
        size += len(composer.render(recipient.variables))
        count += 1
    seconds = time.perf_counter() - started
    if as_json:
        click.echo(
            json.dumps(
                {"dry_run": True, "messages": count, "bytes": size, "seconds": round(seconds, 3)}
            )
        )
    else:
        err.print(
            f"dry run: {count} messages rendered ({size / 1e6:.1f} MB) in {seconds:.2f} s;"
            " nothing sent"
        )


@click.command("status")
@click.argument("campaign", required=False)
@db_option
@json_option
def status_command(campaign: str | None, db: str, as_json: bool) -> None:
    """Show every campaign, or one campaign in detail."""
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
        console.print(
            f"  route {record.route_key}" + (f" — learned: {data['limits_text']}" if limits else "")
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
def pause_command(campaign: str, db: str) -> None:
    """Pause a campaign: its engine finishes in-flight messages and stops."""
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
def cancel_command(campaign: str, db: str) -> None:
    """Cancel a campaign: nothing new starts; in-flight messages finish and are recorded."""
    store = _open_existing(db)
    try:
        record = store.get_campaign(_ref(campaign))
        if record.state is CampaignState.CANCELLED:
            err.print(f"campaign {record.id} is already cancelled")
            return
        _refuse_finished(record, "cancel")
        store.set_campaign_state(record.id, CampaignState.CANCELLED, "cancelled by user")
        count = store.cancel_pending(record.id)
        err.print(f"campaign {record.id} cancelled; {count} unsent messages cancelled")
    finally:
        store.close()


def _continue(record_ref: str, db: str, as_json: bool, states: set[MessageState] | None) -> None:
    store = _open_existing(db)
    try:
        record = store.get_campaign(_ref(record_ref))
        if states:
            count = store.retry(record.id, states)
            err.print(f"{count} message(s) queued again")
        if record.state in (CampaignState.DONE, CampaignState.CANCELLED):
            record = store.set_campaign_state(record.id, CampaignState.QUEUED, None)
        settings = settings_from_campaign(record, db)
        checked = check(settings)
        record, composer = prepare(store, settings, checked)
        engine = engine_for(store, record, composer, settings)
        report = _run_engine(engine, store, as_json=as_json, title=record.name)
    finally:
        store.close()
    sys.exit(report.exit_code)


@click.command("resume")
@click.argument("campaign")
@db_option
@json_option
def resume_command(campaign: str, db: str, as_json: bool) -> None:
    """Resume a paused (or interrupted) campaign in the foreground."""
    _continue(campaign, db, as_json, None)


@click.command("retry")
@click.argument("campaign")
@click.option("--failed", "which", flag_value="failed", help="Retry failed messages.")
@click.option(
    "--uncertain", "which", flag_value="uncertain", help="Retry uncertain messages held for review."
)
@db_option
@json_option
def retry_command(campaign: str, which: str | None, db: str, as_json: bool) -> None:
    """Queue failed and/or uncertain messages again and send them in the foreground."""
    states = {MessageState.FAILED, MessageState.UNCERTAIN}
    if which == "failed":
        states = {MessageState.FAILED}
    elif which == "uncertain":
        states = {MessageState.UNCERTAIN}
    if not states:
        raise UsageError("nothing to retry")
    _continue(campaign, db, as_json, states)


COMMANDS = [
    send_command,
    status_command,
    pause_command,
    resume_command,
    cancel_command,
    retry_command,
]
