"""Route groups in the settings: ``[groups]`` in mailpacer.toml, ``--smtp`` / ``--route`` given
several times, duplicates refused, each route's own ceilings and password reference, and the
stored form (a group round-trips; a campaign stored before groups still loads)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from mailpacer.config.campaign import CampaignSettings, RouteEntry, stored_route_keys
from mailpacer.config.file import ConfigFile, parse_config
from mailpacer.config.settings import resolve
from mailpacer.core.errors import ConfigError, UsageError
from mailpacer.core.events import Emitter
from mailpacer.core.limits import Limits
from mailpacer.core.route import parse_route
from mailpacer.core.states import CampaignState
from mailpacer.delivery.campaign_run import CampaignRun
from mailpacer.store import CampaignRecord

FILE = """\
[defaults]
from = "HR <hr@example.com>"
route = "both"

[routes.office]
url = "smtp+starttls://hr@office.example.com:587"
password_env = "OFFICE_PW"
max_connections = 3

[routes.relay]
url = "smtp://relay.example.com:25"
max_rate = "120/min"

[groups]
both = ["office", "relay"]
"""
ENV = {"OFFICE_PW": "secret"}


def config(text: str = FILE) -> ConfigFile:
    return parse_config(textwrap.dedent(text), "/etc/mailpacer.toml")


def settings_for(routes: tuple[RouteEntry, ...] = ()) -> CampaignSettings:
    return CampaignSettings(
        recipients=Path("/data/list.csv"),
        template=Path("/data/tpl"),
        route=parse_route("smtp+starttls://hr@a.example.com:587", environ={}),
        sender="HR <hr@example.com>",
        ceilings=Limits(connections=2),
        password_env="A_PW",
        more_routes=routes,
    )


def test_a_group_in_the_file_is_the_default_route() -> None:
    """``defaults.route`` naming a group: the campaign goes through every route of it, in the
    group's order, each with its own ceilings and password reference."""
    resolved = resolve({}, ENV, config())
    campaign = resolved.campaign(recipients=Path("l.csv"), template=Path("t"))
    office, relay = campaign.routes
    assert campaign.route_keys == (
        "smtp+starttls://hr@office.example.com:587",
        "smtp://relay.example.com:25",
    )
    assert office.route.password == "secret" and office.password_env == "OFFICE_PW"
    assert office.ceilings == Limits(connections=3)
    assert relay.ceilings == Limits(rate_per_minute=120.0)
    assert resolved.route_label == "route 'office' + route 'relay'"


def test_route_flag_names_a_group_or_several_routes() -> None:
    """``--route`` takes a group's name, or several route names; flag ceilings bind each."""
    file = config()
    by_group = resolve({"route": "both"}, ENV, file)
    by_names = resolve({"route": ("relay", "office"), "max_connections": 5}, ENV, file)
    assert by_group.route is not None and by_group.route.host == "office.example.com"
    assert len(by_group.more_routes) == 1
    assert by_names.route is not None and by_names.route.host == "relay.example.com"
    assert by_names.ceilings == Limits(connections=5, rate_per_minute=120.0)
    assert by_names.more_routes[0].ceilings == Limits(connections=5)


def test_smtp_flag_several_times_is_a_group() -> None:
    """``--smtp`` twice: one campaign over both, ``--insecure-tls`` applied to each."""
    flags = {"smtp": ("smtp://a.test:25", "smtps://b.test"), "insecure_tls": True}
    resolved = resolve(flags, {}, None)
    assert resolved.route is not None and resolved.route.key == "smtp://a.test:25"
    (other,) = resolved.more_routes
    assert other.route.key == "smtps://b.test:465"
    assert not resolved.route.verify_tls and not other.route.verify_tls


@pytest.mark.parametrize(
    "flags",
    [
        {"smtp": ("smtp://a.test:25", "smtp://A.test:25/")},
        {"route": ("office", "both")},
    ],
)
def test_the_same_route_twice_is_refused(flags: dict[str, object]) -> None:
    """A route given twice (by URL, or through a group) is a usage error naming it."""
    with pytest.raises(UsageError, match="is given twice"):
        resolve(flags, ENV, config())


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ('both = ["office", "nowhere"]', "no route 'nowhere'"),
        ('both = ["office", "office"]', "named twice"),
        ("both = []", "expected an array of route names"),
        ('office = ["relay"]', "already a route's name"),
    ],
)
def test_bad_groups_name_the_line(groups: str, message: str) -> None:
    """Each mistake in ``[groups]`` is a config error with the file, key and line."""
    text = FILE.replace('both = ["office", "relay"]', groups).replace('route = "both"\n', "")
    with pytest.raises(ConfigError, match=message) as info:
        config(text)
    assert info.value.line is not None and "/etc/mailpacer.toml:" in str(info.value)


def test_an_unknown_group_or_route_name_lists_both() -> None:
    """``--route`` with a name that is neither: the error lists routes and groups."""
    with pytest.raises(ConfigError, match=r"no such route or group .*office, relay, both"):
        resolve({"route": "other"}, ENV, config())


def test_a_group_round_trips_through_the_stored_form(tmp_path: Path) -> None:
    """Stored and read back: the same routes, ceilings and password references, in order; the
    passwords are read again from where they come from, never stored."""
    secret = tmp_path / "b-password"
    secret.write_text("pw-b-from-file\n", encoding="utf-8")
    group = (
        RouteEntry(
            parse_route("smtp+starttls://hr:pw-b-in-url@b.example.com:587", environ={}),
            Limits(rate_per_minute=30.0),
            password_file=str(secret),
        ),
        RouteEntry(parse_route("smtp://c.example.com:2525", environ={})),
    )
    settings = settings_for(group)
    stored = settings.to_stored()
    assert "pw-b" not in str(stored)
    back = CampaignSettings.from_stored(stored, environ={"A_PW": "pw-a"})
    assert back == settings
    assert back.route.password == "pw-a"
    assert back.routes[1].route.password == "pw-b-from-file"
    assert back.routes[1].ceilings == Limits(rate_per_minute=30.0)
    assert back.routes[1].password_file == str(secret)
    assert stored_route_keys(stored) == settings.route_keys


def test_a_campaign_stored_before_groups_still_loads() -> None:
    """A one-route campaign is stored exactly as before (no ``more_routes``), and settings
    stored by an older mailpacer load as a group of one."""
    stored = settings_for().to_stored()
    assert "more_routes" not in stored
    old = {k: v for k, v in stored.items() if k != "version"} | {"version": 2}
    loaded = CampaignSettings.from_stored(old, environ={})
    assert loaded.route_keys == ("smtp+starttls://hr@a.example.com:587",)
    assert loaded.more_routes == ()


def test_a_group_with_a_route_twice_is_refused_even_when_built_directly() -> None:
    """CampaignSettings itself refuses a group with one route twice (the API's last check)."""
    same = RouteEntry(parse_route("smtp+starttls://hr@a.example.com:587", environ={}))
    with pytest.raises(UsageError, match="given twice in one group"):
        settings_for((same,))


def test_resume_through_another_route_leaves_the_group() -> None:
    """``with_route`` (``resume --smtp``): that route alone, its password reference dropped."""
    group = (RouteEntry(parse_route("smtp://c.example.com:2525", environ={})),)
    alone = settings_for(group).with_route(parse_route("smtp://d.example.com:25", environ={}))
    assert alone.route_keys == ("smtp://d.example.com:25",)
    assert alone.password_env is None


def run_over(*urls: str) -> CampaignRun:
    """A campaign run (nothing sent) over the routes ``urls``."""
    routes = [parse_route(url, environ={}) for url in urls]
    settings = dataclasses.replace(
        settings_for(tuple(RouteEntry(r) for r in routes[1:])), route=routes[0], password_env=None
    )
    record = CampaignRecord(1, "k", "c", CampaignState.RUNNING, None, routes[0].key, {}, 0.0, 0.0)

    async def mark(ids: list[int]) -> None:
        return None

    return CampaignRun(record, settings, lambda v: b"", events=Emitter(), mark_started=mark)


def test_one_failed_route_of_a_group_does_not_stop_the_campaign() -> None:
    """A route of two fails: the run goes on and remembers why; once the other fails too it
    stops as a route error naming each route's reason."""
    run = run_over("smtp://a.test:25", "smtp://b.test:25")
    run.route_failed("smtp://a.test:25", "cannot connect (5 tries)")
    assert not run.stopping and run.route_error is None
    assert run.failed_routes == {"smtp://a.test:25": "cannot connect (5 tries)"}
    run.route_failed("smtp://a.test:25", "said again")  # the first reason stands
    run.route_failed("smtp://b.test:25", "AUTH: 535 5.7.8 bad credentials")
    assert run.stopping and run.route_error == run.stop_reason
    assert run.route_error == (
        "every route of the group failed (smtp://a.test:25: cannot connect (5 tries);"
        " smtp://b.test:25: AUTH: 535 5.7.8 bad credentials)"
    )


def test_a_single_route_failing_stops_with_its_own_reason() -> None:
    """Without a group nothing changes: the route's reason is the campaign's."""
    run = run_over("smtp://a.test:25")
    run.route_failed("smtp://a.test:25", "cannot connect (5 tries)")
    assert run.stopping and run.route_error == "cannot connect (5 tries)"
