"""``mailpacer demo``: the main job on the embedded default, in one command.

Starts the sandbox with the ``strict`` profile (2 connections, "421 Too many concurrent SMTP
connections" beyond that) on a free loopback port, sends the ``examples/worker-qr`` campaign through
it told nothing about the limits, prints the report, and writes the accepted messages to a folder
with an ``index.html`` that shows each rendered email with its QR code.
"""

from __future__ import annotations

import dataclasses
import html
import shutil
import sys
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import click

from mailpacer.cli.send import err, run_engine
from mailpacer.compose.preview import browser_html
from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.errors import UsageError
from mailpacer.core.route import Route
from mailpacer.delivery.runner import check, prepare
from mailpacer.sandbox import Sandbox, get_profile
from mailpacer.store import open_store

SENDER = "HR Check-in <checkin@example.com>"


def find_example(name: str = "worker-qr") -> Path:
    """``examples/NAME`` beside the current directory or the source checkout."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / "examples" / name
        if (candidate / "workers.csv").is_file():
            return candidate
    raise UsageError(f"cannot find examples/{name}/workers.csv; run from the mailpacer checkout")


def write_index(out: Path, messages: list[tuple[str, bytes]]) -> Path:
    """One HTML page per accepted message and an index linking them (all text escaped)."""
    pages = out / "messages"
    pages.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, (recipient, data) in enumerate(messages, 1):
        parsed = message_from_bytes(data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        page = pages / f"{number:04d}.html"
        page.write_text(browser_html(parsed), encoding="utf-8")
        subject = html.escape(str(parsed.get("Subject", "")))
        rows.append(
            f"<tr><td>{number}</td><td>{html.escape(recipient)}</td>"
            f'<td><a href="messages/{page.name}">{subject}</a></td></tr>'
        )
    index = out / "index.html"
    index.write_text(
        '<!DOCTYPE html><meta charset="utf-8"><title>mailpacer demo</title>'
        "<h1>Messages the sandbox accepted</h1><table border=1 cellpadding=4>"
        "<tr><th>#</th><th>to</th><th>subject</th></tr>" + "".join(rows) + "</table>\n",
        encoding="utf-8",
    )
    return index


@click.command("demo")
@click.option("--quick", is_flag=True, help="Send only the first 40 workers (used by the tests).")
@click.option(
    "--out",
    default=Path("demo-output"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the database, the mailbox and index.html (emptied first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report line on stdout.")
def demo_command(quick: bool, out: Path, as_json: bool) -> None:
    """Deliver every worker's QR code through a strict sandbox server, learning its limits."""
    example = find_example()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    profile = get_profile("strict")
    with Sandbox(profile, port=0, mailbox_dir=out / "mailbox") as sb:
        err.print(
            f"sandbox '{profile.name}' on {sb.host}:{sb.port}: at most "
            f"{profile.max_connections} connections, capacity {profile.capacity:.1f} messages/s; "
            "mailpacer is told none of this"
        )
        settings = CampaignSettings(
            recipients=example / "workers.csv",
            template=example / "templates",
            route=Route(host=sb.host, port=sb.port, timeout=10.0),
            sender=SENDER,
            name="worker-qr demo",
        )
        checked = check(settings)
        if quick:
            extra = frozenset(range(41, checked.rows + 1))
            checked = dataclasses.replace(checked, skip_rows=checked.skip_rows | extra)
        store = open_store(out / "mailpacer.db")
        try:
            prepared = prepare(store, settings, checked)
            report = run_engine(
                store,
                prepared.campaign,
                settings,
                prepared.composer,
                as_json=as_json,
                title="workers",
            )
        finally:
            store.close()
        accepted = [(", ".join(m.rcpt_tos), m.data or b"") for m in sb.messages]
    index = write_index(out, accepted)
    if not as_json:
        share = report.throughput / profile.capacity if profile.capacity else 0.0
        err.print(
            f"throughput {report.throughput:.1f} messages/s = {share:.0%} of the server's capacity"
        )
        err.print(
            f"open {index.resolve().as_uri()} in a browser: it lists the emails, each links to "
            "its page (the email as rendered, QR code included)"
        )
    sys.exit(report.exit_code)
