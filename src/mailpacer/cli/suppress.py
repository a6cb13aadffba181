"""``mailpacer suppress add | list | remove``: the addresses no campaign sends to.

Hard bounces (5.1.x) are added as their outcome is recorded; one-click unsubscribes are added by
``mailpacer serve``; people add and remove addresses here. Every later campaign on the same
database skips them and says so.
"""

from __future__ import annotations

import json
import time

import click
from rich.console import Console
from rich.table import Table

from mailpacer.cli.campaigns import _open_existing, _sqlite_file
from mailpacer.cli.send import db_option, err, json_option
from mailpacer.compose.recipients import AddressChecker
from mailpacer.core.errors import UsageError
from mailpacer.store import open_store


@click.group("suppress")
def suppress_command() -> None:
    """The suppression list: addresses that hard-bounced, unsubscribed or were added here."""


@suppress_command.command("add")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--reason", default="added by hand", show_default=True, help="Why, for people.")
@db_option
def add_command(addresses: tuple[str, ...], reason: str, db: str) -> None:
    """Add ADDRESSES: later campaigns skip them."""
    checker = AddressChecker()
    bad = [f"{a!r}: {why}" for a in addresses if (why := checker.problem(a.strip()))]
    if bad:
        raise UsageError("not an address: " + "; ".join(bad))
    store = open_store(db)
    try:
        added = store.add_suppressions(list(addresses), reason=reason, source="manual")
    finally:
        store.close()
    already = len({a.strip().lower() for a in addresses}) - added
    err.print(
        f"{added} address(es) added to the suppression list"
        + (f"; {already} already on it" if already else "")
    )


@suppress_command.command("remove")
@click.argument("addresses", nargs=-1, required=True)
@db_option
def remove_command(addresses: tuple[str, ...], db: str) -> None:
    """Take ADDRESSES off the suppression list: later campaigns send to them again."""
    store = _open_existing(db)
    try:
        removed = store.remove_suppressions(list(addresses))
    finally:
        store.close()
    missing = len({a.strip().lower() for a in addresses}) - removed
    err.print(
        f"{removed} address(es) removed from the suppression list"
        + (f"; {missing} were not on it" if missing else "")
    )


@suppress_command.command("list")
@db_option
@json_option
def list_command(db: str, as_json: bool) -> None:
    """Show the suppressed addresses with their reason and source."""
    path = _sqlite_file(db)
    if path is not None and not path.exists():
        click.echo("[]") if as_json else err.print(
            f"no suppressed addresses (no database at {path})"
        )
        return
    store = _open_existing(db)
    try:
        entries = []
        offset = 0
        while batch := store.suppressions(limit=1000, offset=offset):  # bounded by the table
            entries.extend(batch)
            offset += len(batch)
    finally:
        store.close()
    if as_json:
        rows = [
            {
                "email": e.email,
                "reason": e.reason,
                "source": e.source,
                "campaign": e.campaign_id,
                "at": e.created_at,
            }
            for e in entries
        ]
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not entries:
        err.print("no suppressed addresses")
        return
    table = Table("email", "source", "since", "campaign", "reason")
    for e in entries:
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.created_at))
        campaign = str(e.campaign_id) if e.campaign_id is not None else ""
        table.add_row(e.email, e.source, since, campaign, e.reason)
    Console(soft_wrap=True).print(table)
