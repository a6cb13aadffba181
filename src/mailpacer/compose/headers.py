"""Message header fields as bytes: RFC 2047 encoded words, addresses, folding, injection refusal.

Every value that reaches a header passes :func:`refuse_line_breaks` first: a CR or LF in a
recipient's name, an address or a rendered subject would let the CSV add header fields (or a whole
body) of its own, so it is an error, never silently cleaned.
"""

from __future__ import annotations

import base64
import re
import time

from mailpacer.core.errors import InputError, Problem

MAX_LINE = 78  #: soft line limit for headers we fold (RFC 5322 §2.1.1); the hard limit is 998
_WORD_BYTES = 45  #: UTF-8 bytes per encoded word: 45 bytes -> 60 base64 chars -> 72-char word
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")  # atext and spaces: no quoting
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e\t]*")
_ADDRESS_OK = re.compile(r"[^\s<>()\[\],;:\"\\]+@[^\s<>()\[\],;:\"\\@]+")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def refuse_line_breaks(field: str, value: str) -> str:
    """Return ``value``; raise :class:`InputError` when it contains CR, LF or NUL."""
    if "\r" in value or "\n" in value or "\0" in value:
        message = (
            f"{field} contains a line break (CR/LF) or NUL: {value!r}; refused (header injection)"
        )
        raise InputError(Problem(message))
    return value


def encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 ``=?utf-8?b?...?=`` words of at most 75 characters each, split on
    character boundaries (never inside a UTF-8 sequence)."""
    data = text.encode("utf-8")
    words = []
    start = 0
    while start < len(data):
        end = min(start + _WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # continuation byte: back up
            end -= 1
        words.append("=?utf-8?b?" + base64.b64encode(data[start:end]).decode("ascii") + "?=")
        start = end
    return words


def unstructured(field: str, value: str) -> bytes:
    """A whole unstructured header line (``Subject: ...\\r\\n``), encoded and folded as needed."""
    refuse_line_breaks(field, value)
    value = value.strip()
    prefix = f"{field}: "
    if value.isascii() and _PRINTABLE_ASCII.fullmatch(value) and "=?" not in value:
        if len(prefix) + len(value) <= MAX_LINE:
            return (prefix + value + "\r\n").encode("ascii")
        folded = _fold_at_spaces(prefix, value)
        if max(map(len, folded)) <= 998:
            return ("\r\n".join(folded) + "\r\n").encode("ascii")
    return (prefix + "\r\n ".join(encoded_words(value)) + "\r\n").encode("ascii")


def _fold_at_spaces(prefix: str, value: str) -> list[str]:
    """Split ``prefix + value`` before spaces so that lines stay near :data:`MAX_LINE` (never
    right after the field name: some parsers then keep the folded space)."""
    words = value.split(" ")
    lines = [prefix + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > MAX_LINE and lines[-1].strip():
            lines.append(" " + word)
        else:
            lines[-1] += " " + word
    return lines


def display_name(name: str) -> str:
    """A display name as a phrase: bare atoms, a quoted string, or encoded words."""
    name = " ".join(name.split())
    if not name.isascii() or "=?" in name or max(map(len, name.split(" "))) > 70:
        return " ".join(encoded_words(name))
    if _ATOM_PHRASE.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def header_address(address: str) -> str:
    """The address as it may appear in a header: ASCII, its domain in IDNA form if needed."""
    address = refuse_line_breaks("address", address.strip())
    if len(address) > 254 or not _ADDRESS_OK.fullmatch(address):
        raise InputError(Problem(f"not a usable email address: {address!r}"))
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise InputError(
            Problem(f"{address!r}: non-ASCII before the @ needs SMTPUTF8 (not supported)")
        )
    try:
        return local + "@" + domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InputError(Problem(f"{address!r}: domain is not a valid IDN ({exc})")) from None


def mailbox(name: str, address: str) -> str:
    """``Name <address>`` (or the bare address when the name is empty), header-ready."""
    refuse_line_breaks("name", name)
    address = header_address(address)
    if not name.strip():
        return address
    return f"{display_name(name)} <{address}>"


def address_header(field: str, name: str, address: str) -> bytes:
    """A whole ``To:``/``From:`` header line; encoded words go on their own folded lines."""
    value = mailbox(name, address)
    line = f"{field}: {value}"
    if len(line) > MAX_LINE and " " in value:
        line = f"{field}: " + "\r\n ".join(value.split(" "))
    return (line + "\r\n").encode("ascii")


def date_value(now: float | None = None) -> str:
    """An RFC 5322 date in UTC, e.g. ``Tue, 05 May 2026 10:00:00 +0000``."""
    t = time.gmtime(time.time() if now is None else now)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )
