"""One-click unsubscribe links (RFC 8058): the per-recipient token and the two headers.

A campaign given an unsubscribe base URL (``--unsubscribe-url`` or ``unsubscribe_url`` in
``template.toml``) gets, in every message::

    List-Unsubscribe: <https://example.com/unsubscribe?t=TOKEN>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

The token names the address and proves we made it: ``base64url(address) "." base64url(HMAC-SHA256
(secret, address))[:22]``; the secret comes from ``$MAILPACER_UNSUBSCRIBE_SECRET`` (never stored).
:func:`read_token` is what the HTTP endpoint (``mailpacer serve``) calls on the one-click POST
before it puts the address on the suppression list. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from mailpacer.core.errors import UsageError

SECRET_ENV = "MAILPACER_UNSUBSCRIBE_SECRET"  # noqa: S105 -- the variable's name, not a secret
TOKEN_PARAM = "t"  # noqa: S105 -- a query parameter name
_MAC_CHARS = 22  #: 132 bits of the HMAC, base64url
_MIN_SECRET = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, address: str) -> str:
    digest = hmac.new(secret, b"unsubscribe\0" + address.encode("utf-8"), hashlib.sha256).digest()
    return _b64(digest)[:_MAC_CHARS]


def make_token(secret: bytes, email: str) -> str:
    """The token for ``email`` (case-insensitive: one token per address)."""
    address = email.strip().lower()
    return f"{_b64(address.encode('utf-8'))}.{_mac(secret, address)}"


def read_token(secret: bytes, token: str) -> str | None:
    """The (lower-cased) address a token was made for, or None when it was not made with
    ``secret`` (forged, truncated, altered)."""
    encoded, dot, mac = token.strip().partition(".")
    if not dot or len(mac) != _MAC_CHARS:
        return None
    try:
        address = _unb64(encoded).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not hmac.compare_digest(_mac(secret, address), mac):
        return None
    return address


def secret_from_env(env: Mapping[str, str]) -> bytes:
    """The HMAC secret, or a :class:`UsageError` saying which variable to set."""
    secret = env.get(SECRET_ENV, "")
    if len(secret) < _MIN_SECRET:
        raise UsageError(
            f"an unsubscribe URL needs ${SECRET_ENV}: a random secret of at least {_MIN_SECRET}"
            " characters (e.g. `openssl rand -hex 32`), the same one `mailpacer serve` uses"
        )
    return secret.encode("utf-8")


def check_base_url(url: str, *, source: str = "--unsubscribe-url") -> str:
    """An ``https://`` URL without a fragment (RFC 8058 requires HTTPS), or a UsageError."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc or parts.fragment:
        raise UsageError(
            f"{source} {url!r}: expected an https:// URL such as"
            " https://mail.example.com/unsubscribe (RFC 8058 one-click needs HTTPS)"
        )
    if not url.isascii() or any(c in url for c in " <>\r\n"):
        raise UsageError(f"{source} {url!r}: use a plain ASCII URL (no spaces or <>)")
    return url


@dataclass(frozen=True)
class OneClick:
    """Builds each recipient's one-click link and headers for a campaign."""

    base_url: str
    secret: bytes = field(repr=False)

    def link(self, email: str) -> str:
        """The recipient's unsubscribe URL."""
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}{urlencode({TOKEN_PARAM: make_token(self.secret, email)})}"

    def headers(self, email: str, mailto: list[str] | None = None) -> bytes:
        """``List-Unsubscribe`` (the link, then any ``mailto:`` items) and
        ``List-Unsubscribe-Post``, CRLF-terminated."""
        items = [f"<{self.link(email)}>", *(mailto or [])]
        return (
            "List-Unsubscribe: "
            + ",\r\n ".join(items)
            + "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        ).encode("ascii")
