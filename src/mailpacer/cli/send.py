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

from mailpacer.cli.progress import ProgressView
from mailpacer.compose import Composer
from mailpacer.config.campaign import CampaignSettings
from mailpacer.config.sender import envelope_address
from mailpacer.config.settings import load_settings
from mailpacer.core.events import Observer
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.report import Report
from mailpacer.delivery.runner import check, default_db, prepare
from mailpacer.store import CampaignRecord, Store, open_store

err = Console(stderr=True, soft_wrap=True)  # log files get whole lines, not 80 columns

db_option = click.option(
    "--db",
    default=default_db,
    show_default="$MAILPACER_DB or ~/.local/share/mailpacer/mailpacer.db",
    help="SQLite file (or sqlite:///path), or a postgresql:// URL, holding campaigns.",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON report line on stdout."
)


def run_engine(
    store: Store,
    campaign: CampaignRecord,
    settings: CampaignSettings,
    composer: Composer,
    *,
    as_json: bool,
    title: str,
) -> Report:
    """Run the campaign with a progress bar and Ctrl-C handling; print and return the report."""
    observers: list[Observer] = []
    view = ProgressView(err, title) if not as_json else None
    if view is not None:
        observers.append(view)

    async def main() -> Report:
        engine = Engine(store, observers=observers)
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
        try:
            return await engine.run(campaign, settings, composer.render)
        finally:
            await engine.close()

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
    for sentence in report.explanations:
        err.print(f"    {sentence}")
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
    "--db",
    default=None,
    help="SQLite file or postgresql:// URL (default: $MAILPACER_DB or the user data dir).",
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
    resolved.require_route()
    sender = resolved.require_sender()
    envelope_address(sender, source=_source(resolved.origins.get("from", "flag --from")))
    settings = resolved.campaign(
        recipients=recipients, template=template, skip_invalid=skip_invalid, name=name
    )
    checked = check(settings)
    for warning in checked.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    for problem in checked.problems:  # only with --skip-invalid: reported, not sent
        err.print(f"[yellow]skipped:[/] {problem}")
    if dry_run:
        _dry_run(settings, checked.skip_rows, as_json=as_json)
        return
    store = open_store(resolved.db)
    try:
        campaign, composer = prepare(store, settings, checked)
        report = run_engine(
            store, campaign, settings, composer, as_json=as_json, title=campaign.name
        )
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


def _dry_run(settings: CampaignSettings, skip_rows: frozenset[int], *, as_json: bool) -> None:
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


COMMANDS = [send_command]
