"""Where messages leave: an SMTP route parsed from a URL (DESIGN §1, §7).

``smtp://host:port`` (plain), ``smtp+starttls://user@host:587`` (STARTTLS required),
``smtps://user@host:465`` (implicit TLS). The password comes from ``MAILPACER_SMTP_PASSWORD`` or a
secrets file, or from the URL for local testing; it is never part of :attr:`Route.key`, never
logged and never stored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mailpacer.core.errors import UsageError

PASSWORD_ENV = "MAILPACER_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a password
PASSWORD_FILE_ENV = "MAILPACER_SMTP_PASSWORD_FILE"  # noqa: S105 - the variable's name


class TlsMode(StrEnum):
    """How the connection is protected."""

    #: no TLS (only sensible on loopback or a trusted relay)
    NONE = "smtp"
    #: plain connect, then STARTTLS is required before anything else
    STARTTLS = "smtp+starttls"
    #: TLS from the first byte (port 465)
    IMPLICIT = "smtps"


_DEFAULT_PORTS = {TlsMode.NONE: 25, TlsMode.STARTTLS: 587, TlsMode.IMPLICIT: 465}


@dataclass(frozen=True)
class Route:
    """One SMTP server to deliver through, with how to authenticate to it."""

    host: str
    port: int
    tls: TlsMode = TlsMode.NONE
    username: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    verify_tls: bool = True
    cafile: str | None = None
    timeout: float = 60.0

    @property
    def key(self) -> str:
        """Identity of the route for learned limits: no password, stable across runs."""
        user = f"{self.username}@" if self.username else ""
        return f"{self.tls.value}://{user}{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL without the password (safe to print and to store)."""
        return self.key

    def __str__(self) -> str:
        return self.key


def parse_route(
    url: str,
    *,
    verify_tls: bool = True,
    cafile: str | None = None,
    timeout: float = 60.0,
    environ: dict[str, str] | None = None,
) -> Route:
    """Parse an ``--smtp`` URL into a :class:`Route`; bad input raises :class:`UsageError`."""
    env = os.environ if environ is None else environ
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"--smtp {url!r}: {exc}") from None
    try:
        tls = TlsMode(parts.scheme.lower())
    except ValueError:
        schemes = ", ".join(f"{m.value}://" for m in TlsMode)
        raise UsageError(
            f"--smtp {url!r}: unknown scheme {parts.scheme!r}; use one of {schemes}"
        ) from None
    if not parts.hostname:
        raise UsageError(f"--smtp {url!r}: no host (expected e.g. {tls.value}://host:port)")
    if port == 0:
        raise UsageError(f"--smtp {url!r}: port 0 is not a server's port (1-65535)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageError(
            f"--smtp {url!r}: unexpected path or query; expected {tls.value}://host:port"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and username is not None:
        password = _password_from_env(env)
    if timeout <= 0:
        raise UsageError(f"timeout must be positive, got {timeout}")
    return Route(
        host=parts.hostname,
        port=port if port is not None else _DEFAULT_PORTS[tls],
        tls=tls,
        username=username,
        password=password,
        verify_tls=verify_tls,
        cafile=cafile,
        timeout=timeout,
    )


def _password_from_env(env: dict[str, str] | os._Environ[str]) -> str | None:
    """The password from the environment or from the secrets file the environment names."""
    if env.get(PASSWORD_ENV):
        return env[PASSWORD_ENV]
    path = env.get(PASSWORD_FILE_ENV)
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"{PASSWORD_FILE_ENV}={path}: cannot read: {exc.strerror}") from None
    return None
