"""Provider presets: endpoints, published limits with their sources, and preset_route."""

from __future__ import annotations

import pytest

from mailpacer.config.presets import ALIASES, PRESETS, get_preset, preset_route
from mailpacer.core.errors import ConfigError
from mailpacer.core.route import TlsMode


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_says_where_its_figures_come_from(name: str) -> None:
    """Each preset has an endpoint, a username hint and a source for its limits."""
    preset = PRESETS[name]
    assert preset.port in (25, 465, 587, 2525)
    assert (preset.tls is TlsMode.IMPLICIT) == (preset.port == 465)
    assert preset.username_hint and len(preset.source) > 30


def test_office365_limits_are_the_published_ones() -> None:
    """Microsoft 365: 3 connections, 30 messages/minute, 10,000 a day, from Microsoft's pages."""
    route, limits = preset_route("office365", username="hr@contoso.com", password="pw")
    assert (route.host, route.port, route.tls) == ("smtp.office365.com", 587, TlsMode.STARTTLS)
    assert (route.username, route.password) == ("hr@contoso.com", "pw")
    assert limits.to_dict() == {
        "connections": 3, "rate_per_minute": 30, "messages_per_connection": None,
        "quota": 10_000, "quota_window_seconds": 86_400.0,
        "window_messages": None, "window_seconds": None, "evidence": {},
    }  # fmt: skip
    assert "Exchange Online limits" in get_preset("office365").source


def test_ses_needs_a_region() -> None:
    """Amazon SES's host depends on the region; without one the error says so."""
    route, limits = preset_route("ses", username="AKIA", password="pw", region="us-east-2")
    assert route.host == "email-smtp.us-east-2.amazonaws.com"
    assert limits.rate_per_minute is None  # the account's own rate: set max_rate
    with pytest.raises(ConfigError, match="needs a region"):
        preset_route("ses", username="AKIA", password="pw")


def test_sendgrid_username_is_apikey() -> None:
    """SendGrid's username is the literal 'apikey'; only the key is needed."""
    route, limits = preset_route("sendgrid", username=None, password="SG.x")
    assert route.username == "apikey"
    assert limits.messages_per_connection == 5000


def test_missing_password_names_the_variable() -> None:
    """A preset without a password says which environment variable to set."""
    with pytest.raises(ConfigError, match="set MAILPACER_SMTP_PASSWORD") as info:
        preset_route("exmail", username="hr@example.com", password=None)
    assert "needs a password" in str(info.value)


def test_missing_username_says_what_it_is() -> None:
    """A preset without a username says what the provider expects."""
    with pytest.raises(ConfigError, match="the mailbox address"):
        preset_route("office365", username=None, password="pw")


def test_relay_needs_a_host_and_may_skip_auth() -> None:
    """The generic relay needs host=; without a username no password is required."""
    route, limits = preset_route("relay", username=None, password=None, host="relay.internal")
    assert (route.host, route.username, limits.connections) == ("relay.internal", None, None)
    with pytest.raises(ConfigError, match="relay's address"):
        preset_route("relay", username=None, password=None)


def test_aliases_and_unknown_names() -> None:
    """Aliases find their preset; an unknown name lists the known ones."""
    assert all(get_preset(alias).name == name for alias, name in ALIASES.items())
    assert get_preset(" Microsoft365 ").name == "office365"
    with pytest.raises(ConfigError, match="known: office365, google-workspace"):
        get_preset("hotmale")


def test_repr_shows_the_endpoint() -> None:
    """The repr names the preset and its URL."""
    assert repr(get_preset("qq")) == "<Preset qq smtps://smtp.qq.com:465>"
