"""Header fields: encoded words, folding, addresses, and refused line breaks."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpacer.compose.headers import (
    address_header,
    date_value,
    display_name,
    encoded_words,
    header_address,
    mailbox,
    refuse_line_breaks,
    unstructured,
)
from mailpacer.core.errors import InputError


def parsed_header(line: bytes, name: str) -> str:
    """The decoded value of header ``name`` in a one-header message."""
    message = email.message_from_bytes(line + b"\r\n", policy=email.policy.default)
    return str(message[name])


def test_encoded_words_are_short_and_split_on_characters() -> None:
    """Each word is at most 75 characters, and the words decode back to the whole text."""
    text = "张伟的签到二维码" * 20
    words = encoded_words(text)
    assert len(words) > 1
    assert all(len(word) <= 75 for word in words)
    line = ("Subject: " + "\r\n ".join(words) + "\r\n").encode("ascii")
    assert parsed_header(line, "Subject") == text


@pytest.mark.parametrize(
    "subject",
    [
        "Your check-in code",
        "x" * 70 + " " + "y" * 70 + " tail",
        "z" * 2000,
        "吴磊，您在北门仓库的签到二维码（2026-06-17）",
        "Mixed 签到 code =?utf-8?q?not-a-word?=",
        "tab\tinside",
    ],
)
def test_subject_round_trips_and_lines_stay_short(subject: str) -> None:
    """ASCII, very long, Chinese and encoded-word-looking subjects decode to themselves, with
    every line within 998 octets."""
    line = unstructured("Subject", subject)
    assert line.endswith(b"\r\n")
    assert all(len(piece) <= 998 for piece in line.split(b"\r\n"))
    assert parsed_header(line, "Subject") == subject


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=300))
def test_any_subject_round_trips(subject: str) -> None:
    """Property: any single-line text becomes a header that decodes to it (trimmed) and whose
    lines are all within 998 octets."""
    line = unstructured("Subject", subject)
    assert all(len(piece) <= 998 for piece in line.split(b"\r\n"))
    assert (
        parsed_header(line, "Subject") == " ".join(subject.strip().split(" "))
        or not subject.strip()
    )


@pytest.mark.parametrize("value", ["a\nBcc: x@example.com", "a\rb", "a\r\nb", "nul\0"])
def test_line_breaks_are_refused(value: str) -> None:
    """CR, LF or NUL in a header value is an InputError naming the field (header injection)."""
    with pytest.raises(InputError, match="Subject contains a line break"):
        unstructured("Subject", value)
    with pytest.raises(InputError, match="line break"):
        refuse_line_breaks("name", value)
    with pytest.raises(InputError, match="line break"):
        mailbox(value, "a@example.com")
    with pytest.raises(InputError):
        header_address(f"a{value}@example.com")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Sarah Smith", "Sarah Smith"),
        ("Smith, Sarah", '"Smith, Sarah"'),
        ('Sarah "Sal" Smith', '"Sarah \\"Sal\\" Smith"'),
        ("张伟", "=?utf-8?b?5byg5Lyf?="),
    ],
)
def test_display_names(name: str, expected: str) -> None:
    """Plain names stay bare, names with specials are quoted, non-ASCII names are encoded."""
    assert display_name(name) == expected


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("张伟", "zhang.wei@example.com"),
        ("Smith, Sarah <boss>", "sarah@example.com"),
        ("", "plain@example.com"),
        ("欧阳" * 7 + "娜", "long@example.com"),
    ],
)
def test_address_header_round_trips(name: str, address: str) -> None:
    """To: headers decode back to the same display name and address."""
    line = address_header("To", name, address)
    message = email.message_from_bytes(line + b"\r\n", policy=email.policy.default)
    (parsed,) = message["To"].addresses
    assert (parsed.display_name, parsed.addr_spec) == (name, address)


def test_long_names_use_several_encoded_words() -> None:
    """A name longer than one encoded word is split into several (RFC 2047: at most 75 chars
    each); readers ignore the space between them (the stdlib's address parser keeps it, so we
    compare without spaces)."""
    line = address_header("To", "王" * 60, "long@example.com")
    assert line.count(b"=?utf-8?b?") == 4
    assert all(len(piece) <= 78 for piece in line.split(b"\r\n"))
    message = email.message_from_bytes(line + b"\r\n", policy=email.policy.default)
    assert message["To"].addresses[0].display_name.replace(" ", "") == "王" * 60


def test_idn_domain_becomes_ascii_and_non_ascii_local_part_is_refused() -> None:
    """An internationalized domain is written in IDNA form; a non-ASCII local part needs
    SMTPUTF8, which we do not use, so it is an error."""
    assert header_address("a@例子.中国") == "a@xn--fsqu00a.xn--fiqs8s"
    with pytest.raises(InputError, match="SMTPUTF8"):
        header_address("张伟@example.com")
    with pytest.raises(InputError, match="not a usable"):
        header_address("no-at-sign")


def test_date_is_rfc5322() -> None:
    """Date values parse back to the same instant."""
    value = date_value(1_780_000_000.0)
    assert value == "Thu, 28 May 2026 20:26:40 +0000"
    assert email.utils.parsedate_to_datetime(value).timestamp() == 1_780_000_000
