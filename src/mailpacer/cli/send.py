"""CLI commands for campaigns: ``send``, ``status``, ``pause``, ``resume``, ``cancel``, ``retry``.

The contract is DESIGN §7. Long work runs in the foreground with a progress bar; the first Ctrl-C
(or SIGTERM) lets in-flight messages finish and be recorded, a second one exits at once (the next
run recovers what was in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from mailpacer.cli.output import err as err
from mailpacer.cli.output import print_report
from mailpacer.cli.progress import ProgressView
from mailpacer.cli.remote_commands import send_remote, server_option
from mailpacer.compose import CampaignCheck, Composer, iter_recipients, load_template
from mailpacer.compose.tables import TableFormat, parse_delimiter
from mailpacer.compose.validate import validate_campaign
from mailpacer.config.campaign import CampaignSettings, stored_route_keys
from mailpacer.config.file import parse_duration
from mailpacer.config.sender import envelope_address
from mailpacer.config.settings import load_settings
from mailpacer.core.errors import UsageError
from mailpacer.core.events import Observer
from mailpacer.delivery.engine import Engine
from mailpacer.delivery.report import Report
from mailpacer.delivery.runner import Prepared, check, default_db, one_click_for, prepare
from mailpacer.delivery.scheduler import Timing
from mailpacer.store import CampaignRecord, Store, open_store

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
    timing: Timing | None = None,
) -> Report:
    """Run the campaign with a progress bar and Ctrl-C handling; print and return the report."""
    observers: list[Observer] = []
    view = ProgressView(err, title) if not as_json else None
    if view is not None:
        observers.append(view)

    async def main() -> Report:
        engine = Engine(store, observers=observers, timing=timing)
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
    print_report(report, as_json=as_json)
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


@click.command("send")
@click.argument("recipients", type=click.Path(path_type=Path))
@click.option(
    "--template", "template", required=True, type=click.Path(path_type=Path), help="Template dir."
)
@click.option(
    "--smtp",
    multiple=True,
    help="smtp://host:port, smtp+starttls://user@host:587, smtps://user@host:465; several:"
    " one campaign spread over them, each route given what it can take.",
)
@click.option(
    "--route",
    "route_name",
    multiple=True,
    help="A route (or a group of routes) from mailpacer.toml; several: one campaign over all.",
)
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
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate and render every message; send nothing (needs no route).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --dry-run: write every rendered message to this folder as .eml.",
)
@click.option("--name", help="Campaign name (default: the recipients file's name).")
@click.option(
    "--wait-deferred",
    default="15m",
    show_default=True,
    help="When only deferred messages are left (greylisting, temporary failures), wait for"
    " them if the next try is at most this far away; otherwise stop (exit 75) and leave them"
    " for a later run. e.g. 0s, 15m, 2h.",
)
@click.option(
    "--outage-wait",
    default="5m",
    show_default=True,
    help="How long a server that stops answering mid-campaign is waited for (retried every few"
    " seconds) before the route counts as failed, e.g. 90s, 10m, 2h.",
)
@click.option(
    "--encoding", help="Encoding of a CSV list, e.g. gbk, cp1252 (default: UTF-8, BOM or not)."
)
@click.option(
    "--delimiter", help="CSV separator: ',' ';' '|' or 'tab' (default: sniffed from the header)."
)
@click.option(
    "--unsubscribe-url",
    help="https:// base of a one-click unsubscribe link (RFC 8058); the token's secret comes "
    "from $MAILPACER_UNSUBSCRIBE_SECRET.",
)
@click.option(
    "--priority",
    type=click.IntRange(-100, 100),
    help="With --server: higher goes first among the service's campaigns on the route.",
)
@server_option
@json_option
def send_command(
    recipients: Path,
    template: Path,
    smtp: tuple[str, ...],
    route_name: tuple[str, ...],
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
    out_dir: Path | None,
    name: str | None,
    wait_deferred: str,
    outage_wait: str,
    encoding: str | None,
    delimiter: str | None,
    unsubscribe_url: str | None,
    priority: int | None,
    server: str | None,
    as_json: bool,
) -> None:
    """Send RECIPIENTS (CSV, .xlsx or .jsonl) with a template through an SMTP server, as fast
    as it allows.

    Flags win over MAILPACER_* variables, which win over mailpacer.toml. Re-running with the
    same recipients, template and sender continues the same campaign, through the route (and
    with the settings) given this time.

    \b
    Exit codes:
      0    every deliverable message was sent
      1    something is left (paused, cancelled, held) or gave up after retries
      2    a bad flag, URL, address or config value; nothing was started
      3    bad campaign input (recipients, template, attachments); nothing was sent
      4    the route failed (unreachable, TLS, password): campaign paused, no message failed
      5    the database cannot be used
      6    with --server: the service cannot be reached (or failed)
      75   only deferred messages are left, due later than --wait-deferred: run again then
      130  a second Ctrl-C quit at once (143: a second SIGTERM)

    With --server URL (or $MAILPACER_SERVER) a running `mailpacer serve` sends it: --route
    names one of its routes, --template one of its templates or a local folder (uploaded as a
    zip); the token comes from $MAILPACER_API_TOKEN. The progress bar, report and exit code are
    a local send's; Ctrl-C stops following, the campaign goes on on the service.
    """
    if server:
        _local_only(_LOCAL_ONLY)
        if len(route_name) > 1:
            raise UsageError(
                "--route with --server: give one name (a group of the service's mailpacer.toml"
                " spreads a campaign over several routes)"
            )
        send_remote(
            server,
            recipients,
            template=str(template),
            route=route_name[0] if route_name else None,
            sender=sender or os.environ.get("MAILPACER_FROM"),
            name=name,
            priority=priority or 0,
            skip_invalid=skip_invalid,
            as_json=as_json,
        )
    if priority is not None:
        raise UsageError("--priority orders campaigns on a service: add --server URL")
    resolved = load_settings(
        {
            "config": config,
            "db": db,
            "from": sender,
            "smtp": smtp or None,
            "route": route_name or None,
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
    timing = Timing(
        outage_seconds=_duration("--outage-wait", outage_wait),
        leave_deferred_after=_duration("--wait-deferred", wait_deferred, zero=True),
    )
    fmt = TableFormat(encoding=encoding, delimiter=parse_delimiter(delimiter))
    sender = resolved.require_sender()
    envelope_address(sender, source=_source(resolved.origins.get("from", "flag --from")))
    if out_dir is not None and not dry_run:
        raise UsageError("--out writes the messages of a --dry-run; add --dry-run")
    if dry_run:
        dry = DryRun(recipients, template, sender, fmt, out_dir, unsubscribe_url)
        _dry_run(dry, skip_invalid=skip_invalid, check_dns=resolved.check_dns, as_json=as_json)
        return
    settings = resolved.campaign(
        recipients=recipients,
        template=template,
        skip_invalid=skip_invalid,
        name=name,
        encoding=encoding,
        delimiter=fmt.delimiter,
        unsubscribe_url=unsubscribe_url,
    )
    checked = check(settings)
    _print_check(checked)
    store = open_store(resolved.db)
    try:
        prepared = prepare(store, settings, checked)
        print_suppressed(prepared)
        say_route_change(prepared)
        campaign = prepared.campaign
        report = run_engine(
            store,
            campaign,
            settings,
            prepared.composer,
            as_json=as_json,
            title=campaign.name,
            timing=timing,
        )
    finally:
        store.close()
    sys.exit(report.exit_code)


#: send's options that only a local send has: the service has them in its mailpacer.toml
_LOCAL_ONLY = (
    "smtp", "provider", "username", "region", "config", "db", "max_connections", "max_rate",
    "insecure_tls", "cafile", "check_dns", "hold_uncertain", "dry_run", "out_dir",
    "wait_deferred", "outage_wait", "encoding", "delimiter", "unsubscribe_url",
)  # fmt: skip


def _local_only(names: tuple[str, ...]) -> None:
    """Refuse (exit 2) options given on the command line that a service does not take."""
    ctx = click.get_current_context()
    given = [
        f"--{name.replace('_', '-').removesuffix('-dir')}"
        for name in names
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
    ]
    if given:
        raise UsageError(
            f"{', '.join(given)}: not with --server (the service's mailpacer.toml and"
            " environment hold routes, credentials and limits)"
        )


def _print_check(checked: CampaignCheck) -> None:
    for warning in checked.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    for problem in checked.problems:  # only with --skip-invalid: reported, not sent
        err.print(f"[yellow]skipped:[/] {problem}")


def say_route_change(prepared: Prepared) -> None:
    """A re-run through another route continues the same campaign: say so (on stderr)."""
    if prepared.previous_route is not None:
        record = prepared.campaign
        now = " + ".join(stored_route_keys(record.options)) or record.route_key
        err.print(
            f"campaign {record.id} ({record.name}) continues through {now}"
            f" (it was sending through {prepared.previous_route})"
        )


def print_suppressed(prepared: Prepared) -> None:
    """Say which recipients the suppression list kept out, and why (on stderr)."""
    for entry in prepared.suppressed[:50]:
        err.print(f"[yellow]suppressed:[/] row {entry.row} {entry.email}: {entry.reason}")
    if len(prepared.suppressed) > 50:
        err.print(f"  … and {len(prepared.suppressed) - 50} more suppressed")
    if prepared.suppressed:
        err.print(
            f"{len(prepared.suppressed)} recipient(s) on the suppression list were not sent"
            " (`mailpacer suppress list`)"
        )


def _duration(flag: str, text: str, *, zero: bool = False) -> float:
    """A duration flag in seconds, or a UsageError naming the flag (``zero``: 0 allowed)."""
    if zero and text.strip() in ("0", "0s", "0m"):
        return 0.0
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _source(origin: str) -> str:
    """Where a setting came from, as an error names it: ``--from``, ``MAILPACER_FROM``, or
    ``mailpacer.toml:3: defaults.from``."""
    kind, _, where = origin.partition(" ")
    if kind == "file":
        return f"{where}: defaults.from"
    return where or origin


@dataclass(frozen=True)
class DryRun:
    """What a dry run renders: no route, no database."""

    recipients: Path
    template: Path
    sender: str
    fmt: TableFormat
    out_dir: Path | None = None
    unsubscribe_url: str | None = None


def _dry_run(dry: DryRun, *, skip_invalid: bool, check_dns: bool, as_json: bool) -> None:
    """Validate, then render every message (to ``out_dir`` as ``.eml`` when given)."""
    checked = validate_campaign(
        dry.recipients,
        dry.template,
        sender=dry.sender,
        check_dns=check_dns,
        skip_invalid=skip_invalid,
        fmt=dry.fmt,
    )
    checked.raise_for_problems()
    _print_check(checked)
    loaded = load_template(dry.template)
    key = hashlib.sha256(
        "\0".join([str(dry.recipients.resolve()), str(dry.template.resolve()), dry.sender]).encode()
    ).hexdigest()[:16]
    composer = Composer(
        loaded,
        sender=dry.sender,
        campaign_key=f"dry-run-{key}",
        base_dir=dry.recipients.resolve().parent,
        one_click=one_click_for(dry.unsubscribe_url, loaded, os.environ),
    )
    if dry.out_dir is not None:
        try:
            dry.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {dry.out_dir}: cannot create the folder: {exc}") from None
    started = time.perf_counter()
    count = size = 0
    rows = iter_recipients(dry.recipients, skip_rows=checked.skip_rows, fmt=dry.fmt)
    for recipient in rows:
        message = composer.render(recipient.variables)
        if dry.out_dir is not None:
            (dry.out_dir / eml_name(recipient.row, recipient.email)).write_bytes(message)
        size += len(message)
        count += 1
    seconds = time.perf_counter() - started
    if as_json:
        data: dict[str, object] = {"dry_run": True, "messages": count, "bytes": size}
        data["seconds"] = round(seconds, 3)
        if dry.out_dir is not None:
            data["out"] = str(dry.out_dir)
        click.echo(json.dumps(data, ensure_ascii=False))
    else:
        where = f"; written to {dry.out_dir}" if dry.out_dir is not None else ""
        err.print(
            f"dry run: {count} messages rendered ({size / 1e6:.1f} MB) in {seconds:.2f} s"
            f"{where}; nothing sent"
        )


def eml_name(row: int, email: str) -> str:
    """``row-00012-ann_example.org.eml``: sorted by row, the address readable, safe anywhere."""
    safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", email)[:80]
    return f"row-{row:05d}-{safe}.eml"


COMMANDS = [send_command]
