"""``mailpacer demo``: the main job on the embedded default, in one command.

Starts the sandbox with the ``strict`` profile (2 connections, "421 Too many concurrent SMTP
connections" beyond that) on a free loopback port, sends the ``examples/worker-qr`` campaign through
it told nothing about the limits, prints the report, and writes the accepted messages to a folder
with an ``index.html`` that shows each email's QR code and the failures with the server's replies.
``--serve`` runs the same campaign in ``mailpacer serve`` instead, to watch on the dashboard.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import click

from mailpacer.cli.demo_report import write_index
from mailpacer.cli.send import err, run_engine
from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.errors import UsageError
from mailpacer.core.route import Route
from mailpacer.delivery.runner import check, prepare
from mailpacer.sandbox import Sandbox, get_profile
from mailpacer.store import open_store

SENDER = "HR Check-in <checkin@example.com>"


def find_example(name: str = "worker-qr") -> Path:
    """``examples/NAME`` beside the current directory or the source checkout."""
    for base in (Path.cwd(), *Path(__file__).resolve().parents[2:4]):
        candidate = base / "examples" / name
        if (candidate / "workers.csv").is_file():
            return candidate
    raise UsageError(f"cannot find examples/{name}/workers.csv; run from the mailpacer checkout")


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
@click.option(
    "--serve",
    "serve",
    is_flag=True,
    help="Run the campaign in `mailpacer serve` and watch it on the dashboard (Ctrl-C stops).",
)
@click.option(
    "--port", default=8025, show_default=True, type=click.IntRange(0, 65535), help="With --serve."
)
def demo_command(quick: bool, out: Path, as_json: bool, serve: bool, port: int) -> None:
    """Deliver every worker's QR code through a strict sandbox server, learning its limits."""
    example = find_example()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if serve:
        from mailpacer.cli.demo_serve import serve_demo

        serve_demo(example, out, port=port, quick=quick, sender=SENDER)
        return
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
    index = write_index(out, accepted, report.failures)
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
