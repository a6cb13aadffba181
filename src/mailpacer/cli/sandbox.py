"""``mailpacer sandbox``: run a sandbox SMTP server on loopback until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mailpacer.sandbox.control import Sandbox

from mailpacer.sandbox.builtin import PROFILES, get_profile
from mailpacer.sandbox.profiles import CAPACITY_FORMULA, Profile


def _capacity(profile: Profile) -> str:
    cap = profile.capacity
    return "unbounded" if math.isinf(cap) else f"{cap:.1f} messages/s"


def _list_profiles() -> None:
    click.echo(CAPACITY_FORMULA)
    for profile in PROFILES.values():
        click.echo("")
        click.echo(f"{profile.name}: {profile.description}")
        click.echo(f"  capacity: {_capacity(profile)}")
        for line in profile.behaviours():
            click.echo(f"  - {line}")


async def _serve(sandbox: Sandbox) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with sandbox:
        profile = sandbox.profile
        click.echo(
            f"sandbox profile {profile.name!r} listening on {sandbox.host}:{sandbox.port} "
            f"(capacity {_capacity(profile)})"
        )
        for line in profile.behaviours():
            click.echo(f"  - {line}")
        if sandbox.credentials is not None:
            user, password = sandbox.credentials
            click.echo(f"  credentials: user={user} password={password}")
            click.echo(f"  CA certificate: {sandbox.cafile}")
        if sandbox.mailbox_dir is not None:
            click.echo(f"  mailbox: {sandbox.mailbox_dir / 'mailbox.jsonl'}")
        click.echo("Ctrl-C to stop", nl=True)
        await stop.wait()
    counters = sandbox.counters
    click.echo(
        f"stopped: {counters.accepted} messages accepted ({counters.dropped} dropped), "
        f"{counters.connections_opened} connections ({counters.connections_refused} refused), "
        f"peak {counters.peak_concurrent} concurrent"
    )


@click.command("sandbox")
@click.option(
    "--profile",
    "profile_name",
    default="strict",
    show_default=True,
    help="Behaviour profile (see --list-profiles).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=2525,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--mailbox",
    "mailbox_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write mailbox.jsonl and one .eml per accepted message here.",
)
@click.option(
    "--password", default=None, help="Password for profiles with AUTH (default: random, printed)."
)
@click.option("--list-profiles", is_flag=True, help="Print every profile and its capacity.")
def sandbox_command(
    profile_name: str,
    host: str,
    port: int,
    mailbox_dir: Path | None,
    password: str | None,
    list_profiles: bool,
) -> None:
    """Run an SMTP server on loopback that behaves like a strict provider."""
    if list_profiles:
        _list_profiles()
        return
    profile = get_profile(profile_name)
    from mailpacer.sandbox.control import Sandbox  # the server loads only when it is used

    logging.basicConfig(level=logging.ERROR, format="sandbox: %(levelname)s %(message)s")
    sandbox = Sandbox(
        profile, host=host, port=port, mailbox_dir=mailbox_dir, keep_data=False, password=password
    )
    asyncio.run(_serve(sandbox))
