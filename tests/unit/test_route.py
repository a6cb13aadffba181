"""Parsing ``--smtp`` URLs into routes."""

from __future__ import annotations

import pytest

from mailpacer.core.errors import UsageError
from mailpacer.core.route import TlsMode, parse_route


def test_plain_url_with_port() -> None:
    """smtp://host:port is plain SMTP on that port, no credentials."""
    route = parse_route("smtp://127.0.0.1:2525", environ={})
    assert (route.host, route.port, route.tls, route.username) == (
        "127.0.0.1",
        2525,
        TlsMode.NONE,
        None,
    )


@pytest.mark.parametrize(
    ("url", "tls", "port"),
    [
        ("smtp+starttls://u@mail.example.com", TlsMode.STARTTLS, 587),
        ("smtps://u@mail.example.com", TlsMode.IMPLICIT, 465),
    ],
)
def test_default_ports_per_scheme(url: str, tls: TlsMode, port: int) -> None:
    """Each scheme has its standard port."""
    route = parse_route(url, environ={})
    assert (route.tls, route.port) == (tls, port)


def test_password_from_environment_never_in_key_or_repr() -> None:
    """The password comes from MAILPACER_SMTP_PASSWORD and appears in neither key nor repr."""
    route = parse_route(
        "smtp+starttls://hr%40example.com@smtp.example.com:587",
        environ={"MAILPACER_SMTP_PASSWORD": "s3cret"},
    )
    assert route.username == "hr@example.com" and route.password == "s3cret"
    assert "s3cret" not in route.key and "s3cret" not in repr(route) and "s3cret" not in str(route)


def test_password_from_secrets_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """MAILPACER_SMTP_PASSWORD_FILE names a file holding the password."""
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    route = parse_route("smtps://u@h", environ={"MAILPACER_SMTP_PASSWORD_FILE": str(secret)})
    assert route.password == "from-file"


def test_password_in_url_for_local_testing() -> None:
    """A password in the URL is accepted (local testing) but not part of the key."""
    route = parse_route("smtp://u:pw@127.0.0.1:25", environ={})
    assert route.password == "pw" and route.key == "smtp://u@127.0.0.1:25"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://host", "unknown scheme"),
        ("smtp://", "no host"),
        ("smtp://host:notaport", "smtp://host:notaport"),
        ("smtp://host:25/path", "unexpected path"),
        ("smtp://host:99999", "smtp://host:99999"),
    ],
)
def test_bad_urls_are_clear_usage_errors(url: str, fragment: str) -> None:
    """A bad --smtp URL is a UsageError that quotes the URL and says what is wrong."""
    with pytest.raises(UsageError) as info:
        parse_route(url, environ={})
    assert fragment in str(info.value)
    assert info.value.exit_code == 2


def test_missing_secrets_file_is_clear() -> None:
    """A secrets file that cannot be read is named in the error."""
    with pytest.raises(UsageError, match="MAILPACER_SMTP_PASSWORD_FILE=/nonexistent/pw"):
        parse_route("smtps://u@h", environ={"MAILPACER_SMTP_PASSWORD_FILE": "/nonexistent/pw"})
