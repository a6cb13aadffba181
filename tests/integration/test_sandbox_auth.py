"""`auth-tls`: STARTTLS with the sandbox's own certificate, then AUTH PLAIN or LOGIN required."""

from __future__ import annotations

import base64
import smtplib
import ssl
from collections.abc import Callable
from contextlib import closing

import pytest

from mailpacer.sandbox import Sandbox

STARTTLS_FIRST = (530, b"5.7.0 Must issue a STARTTLS command first")


def connect(sb: Sandbox) -> smtplib.SMTP:
    """A plain smtplib client connected to the sandbox, after EHLO."""
    client = smtplib.SMTP(sb.host, sb.port, local_hostname="client.test", timeout=10)
    client.ehlo()
    return client


def tls(sb: Sandbox, client: smtplib.SMTP) -> None:
    """STARTTLS trusting only the sandbox's CA, then EHLO again."""
    assert sb.cafile is not None
    client.starttls(context=ssl.create_default_context(cafile=str(sb.cafile)))
    client.ehlo()


def plain(user: str, password: str) -> str:
    """The AUTH PLAIN initial response."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_auth_refused_before_starttls(sandbox: Callable[..., Sandbox]) -> None:
    """Before STARTTLS: STARTTLS offered, AUTH not; AUTH, MAIL and RCPT get 530 5.7.0."""
    sb = sandbox("auth-tls")
    assert sb.credentials is not None
    user, password = sb.credentials
    with closing(connect(sb)) as client:
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert client.docmd("AUTH", "PLAIN " + plain(user, password)) == STARTTLS_FIRST
        assert client.docmd("AUTH", "LOGIN") == STARTTLS_FIRST
        assert client.mail("sender@client.test") == STARTTLS_FIRST
        assert client.docmd("RCPT", "TO:<worker@example.com>") == STARTTLS_FIRST
        client.quit()
    assert sb.messages == []


def test_after_starttls_auth_is_required_and_offered(sandbox: Callable[..., Sandbox]) -> None:
    """After STARTTLS: AUTH PLAIN and LOGIN offered; MAIL without AUTH is 530 5.7.0; a wrong
    password is 535."""
    sb = sandbox("auth-tls")
    assert sb.credentials is not None
    user, _ = sb.credentials
    with closing(connect(sb)) as client:
        tls(sb, client)
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        assert not client.has_extn("starttls")
        assert client.mail("sender@client.test") == (530, b"5.7.0 Authentication required")
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login(user, "not-the-password")
        assert wrong.value.smtp_code == 535
        client.quit()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_then_auth_delivers(sandbox: Callable[..., Sandbox], mechanism: str) -> None:
    """STARTTLS with the sandbox's CA, then AUTH PLAIN or LOGIN with sb.credentials: delivered."""
    sb = sandbox("auth-tls", password="s3cret-pw")
    assert sb.credentials == ("sandbox", "s3cret-pw")
    with closing(connect(sb)) as client:
        tls(sb, client)
        client.user, client.password = sb.credentials
        auth = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        assert client.auth(mechanism, auth)[0] == 235
        client.sendmail("sender@client.test", ["worker@example.com"], b"Subject: x\r\n\r\nhi\r\n")
        client.quit()
    assert len(sb.messages) == 1


def test_certificate_is_not_trusted_without_the_cafile(sandbox: Callable[..., Sandbox]) -> None:
    """The certificate is self-made: a client with the system trust store refuses it."""
    sb = sandbox("auth-tls")
    assert sb.certificate_pem is not None and "BEGIN CERTIFICATE" in sb.certificate_pem
    with closing(connect(sb)) as client, pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(context=ssl.create_default_context())
    assert sb.counters.internal_errors == 0


def test_profiles_without_auth_offer_neither_starttls_nor_auth(
    sandbox: Callable[..., Sandbox],
) -> None:
    """An ordinary profile looks like an ordinary server: no STARTTLS, no AUTH, no PIPELINING
    and no limits advertised (those are profile switches); credentials and certificate are
    None."""
    sb = sandbox("strict")
    assert sb.credentials is None and sb.cafile is None
    with closing(connect(sb)) as client:
        features = set(client.esmtp_features)
        client.quit()
    assert {"size", "8bitmime"} <= features
    assert not features & {"starttls", "auth", "limits", "pipelining"}
