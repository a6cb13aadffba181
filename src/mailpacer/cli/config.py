"""``mailpacer config check`` and ``mailpacer config presets``.

Imports of the configuration modules happen inside the commands, so registering this group never
fails even while other parts of the package are being built.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mailpacer.config.file import RouteConfig
    from mailpacer.pacing.pacer import Limits


def describe_limits(limits: Limits | None) -> str:
    """``3 connections · 30/min · 10,000 per day`` or ``none (learned while sending)``."""
    if limits is None:
        return "none (learned while sending)"
    parts = []
    if limits.connections is not None:
        parts.append(f"{limits.connections} connections")
    if limits.rate_per_minute is not None:
        rate = limits.rate_per_minute
        parts.append(f"{rate / 60:g}/s" if rate >= 60 and rate % 60 == 0 else f"{rate:g}/min")
    if limits.messages_per_connection is not None:
        parts.append(f"{limits.messages_per_connection:,} per connection")
    if limits.quota is not None:
        window = limits.quota_window_seconds or 86400.0
        per = "day" if window == 86400.0 else f"{window:g} s"
        parts.append(f"{limits.quota:,} per {per}")
    return " · ".join(parts) or "none (learned while sending)"


def _span(seconds: float) -> str:
    """``259200`` → ``3d``, ``90`` → ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def password_reference(rc: RouteConfig, env: Mapping[str, str]) -> str:
    """Where the route's password comes from and whether it is there — never the password."""
    from mailpacer.config.presets import get_preset
    from mailpacer.core.route import PASSWORD_ENV, PASSWORD_FILE_ENV

    if rc.password_env:
        return f"${rc.password_env} " + ("(set)" if env.get(rc.password_env) else "(NOT SET)")
    secret = rc.password_file or (None if env.get(PASSWORD_ENV) else env.get(PASSWORD_FILE_ENV))
    if secret:
        ok = Path(secret).is_file() and os.access(secret, os.R_OK)
        return f"file {secret} " + ("(readable)" if ok else "(NOT READABLE)")
    username = rc.username or (get_preset(rc.provider).default_username if rc.provider else None)
    if not username:
        return "none needed (no username)"
    return f"${PASSWORD_ENV} " + ("(set)" if env.get(PASSWORD_ENV) else "(NOT SET)")


@click.group("config")
def config_command() -> None:
    """Check mailpacer.toml and list the provider presets."""


@config_command.command("check")
@click.option(
    "--config",
    "path",
    type=click.Path(path_type=Path),
    help="Config file (default: $MAILPACER_CONFIG, then ./mailpacer.toml).",
)
def check_command(path: Path | None) -> None:
    """Validate the config file and show what a run would use (never the passwords)."""
    from mailpacer.config.file import CONFIG_ENV, find_config, load_config
    from mailpacer.config.settings import ceilings, endpoint_of, resolve, route_from_config
    from mailpacer.core.errors import ConfigError, MailpacerError

    env = os.environ
    found = find_config(path, env)
    if found is None:
        raise ConfigError(
            f"no config file: give --config PATH, set {CONFIG_ENV} or create ./mailpacer.toml "
            "(a documented example: examples/mailpacer.toml)"
        )
    file = load_config(found)
    echo = click.echo
    echo(f"config: {found}")
    d = file.defaults
    echo(
        f"defaults: db={d.db or '(built-in)'} from={d.sender or '(none)'} "
        f"uncertain={d.uncertain or 'resend'} check_dns={bool(d.check_dns)}"
    )
    r = d.retry
    echo(
        f"  retry: max_attempts={r.max_attempts} max_age={_span(r.max_age_seconds)} "
        f"base={_span(r.base_seconds)} cap={_span(r.cap_seconds)}"
    )
    problems: list[str] = []
    default = None if file.defaults.route in file.groups else file.default_route()
    for rc in file.routes.values():
        mark = " (default)" if default is rc else ""
        route = endpoint_of(rc)
        echo(f"route {rc.name}{mark}: {route.url}" + (f"  [{rc.provider}]" if rc.provider else ""))
        echo(f"  ceilings: {describe_limits(ceilings(rc))}")
        echo(f"  password: {password_reference(rc, env)}")
        if not route.verify_tls:
            echo("  tls: certificate NOT verified")
        try:
            route_from_config(rc, env, file)
        except MailpacerError as exc:
            problems.append(str(exc))
    for group, members in file.groups.items():
        mark = " (default)" if file.defaults.route == group else ""
        echo(f"group {group}{mark}: {', '.join(members)} (one campaign spread over them)")
    names = ", ".join(rule.name for rule in file.rules)
    echo(f"rules: {len(file.rules)} user rule(s)" + (f": {names}" if names else ""))
    if not problems:
        try:
            settings = resolve({"config": str(found)}, env, file)
        except MailpacerError as exc:
            problems.append(str(exc))
        else:
            echo(
                f"a run would use: {settings.route_label or 'no route'} "
                f"({settings.origins['route']}); ceilings: {describe_limits(settings.ceilings)}"
            )
    # the verdict comes last, after everything was checked: never "valid" above its errors
    if not problems:
        echo(f"config: {found} is valid")
        return
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    click.echo(f"config: {found} has {len(problems)} problem(s)", err=True)
    sys.exit(ConfigError.exit_code)


@config_command.command("presets")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per preset, as a list.")
def presets_command(as_json: bool) -> None:
    """List the provider presets with their published limits and where each figure comes from."""
    from mailpacer.config.presets import ALIASES, PRESETS

    if as_json:
        rows = [
            {
                "name": p.name,
                "title": p.title,
                "url": p.url(region="{region}", host="{host}"),
                "username": p.username_hint,
                "password": p.credential_hint,
                "limits": p.limits.to_dict(),
                "source": p.source,
                "aliases": sorted(a for a, n in ALIASES.items() if n == p.name),
            }
            for p in PRESETS.values()
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for p in PRESETS.values():
        aliases = sorted(a for a, n in ALIASES.items() if n == p.name)
        click.echo(f"{p.name} — {p.title}" + (f"  (also: {', '.join(aliases)})" if aliases else ""))
        click.echo(
            f"  {p.url(region='{region}', host='{host}')}" + (f"  ({p.notes})" if p.notes else "")
        )
        click.echo(f"  username: {p.username_hint}; password: {p.credential_hint}")
        click.echo(f"  ceilings: {describe_limits(p.limits)}")
        click.echo(f"  source: {p.source}")
    click.echo('Use one: mailpacer send ... --provider NAME, or provider = "NAME" in [routes.X].')
