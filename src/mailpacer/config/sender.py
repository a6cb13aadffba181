"""The sender: one address, checked once at the edge (its bare address is the MAIL FROM)."""

from __future__ import annotations

import re
from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

from mailpacer.core.errors import UsageError

__all__ = ["envelope_address"]


_MAILBOX = re.compile(r"\s*(?:(?P<name>[^<>]*?)\s*<(?P<angle>[^<>]*)>|(?P<bare>[^<>\s]+))\s*")


def envelope_address(sender: str, *, source: str = "--from") -> str:
    """The bare address of ``"Name <addr@host>"`` (MAIL FROM), or a :class:`UsageError` that
    names ``source`` (the flag, variable or file line the sender came from)."""
    if any(c in sender for c in "\r\n"):
        raise UsageError(f"{source} {sender!r}: line breaks are not allowed in a header")
    example = "expected one address such as 'Team <team@example.com>'"
    match = _MAILBOX.fullmatch(sender)
    if match is None:
        raise UsageError(f"{source} {sender!r}: {example}")
    address = match["angle"] if match["angle"] is not None else match["bare"]
    if parseaddr(sender)[1] != address:  # the composer would read another address (or none)
        raise UsageError(f"{source} {sender!r}: {example}")
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError as exc:
        raise UsageError(f"{source} {sender!r}: {exc}") from None
    return address
