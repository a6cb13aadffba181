"""One-click unsubscribe (RFC 8058, issue 14.12): the per-recipient token and the headers."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from urllib.parse import parse_qs, urlsplit

import pytest
from compose_helpers import EXAMPLE_TEMPLATE
from hypothesis import given
from hypothesis import strategies as st

from mailpacer.compose import Composer, load_template
from mailpacer.compose.unsubscribe import (
    OneClick,
    check_base_url,
    make_token,
    read_token,
    secret_from_env,
)
from mailpacer.core.errors import UsageError

SECRET = b"0123456789abcdef0123456789abcdef"


def test_a_token_names_its_address_and_only_with_the_secret() -> None:
    """The token reads back to the lower-cased address with the same secret; another secret,
    an altered address or a cut token read as None."""
    token = make_token(SECRET, "Ann@Example.org")
    assert read_token(SECRET, token) == "ann@example.org"
    assert token == make_token(SECRET, "ann@example.org ")
    assert read_token(b"another secret, just as long!!", token) is None
    mac = token.partition(".")[2]
    forged = make_token(SECRET, "bob@example.org").split(".")[0] + "." + mac
    assert read_token(SECRET, forged) is None
    assert read_token(SECRET, token[:-1]) is None
    assert read_token(SECRET, "no-dot") is None and read_token(SECRET, "!!!." + mac) is None


@given(st.text(max_size=60), st.text(max_size=60))
def test_read_token_never_raises(address: str, junk: str) -> None:
    """Any text is a token or None, never an exception; real tokens always read back."""
    assert read_token(SECRET, junk) is None or isinstance(read_token(SECRET, junk), str)
    assert read_token(SECRET, make_token(SECRET, address)) == address.strip().lower()


def test_secret_and_base_url_are_checked() -> None:
    """A missing or short secret names the variable; the base URL must be https."""
    with pytest.raises(UsageError, match=r"\$MAILPACER_UNSUBSCRIBE_SECRET"):
        secret_from_env({"MAILPACER_UNSUBSCRIBE_SECRET": "short"})
    assert secret_from_env({"MAILPACER_UNSUBSCRIBE_SECRET": "x" * 16}) == b"x" * 16
    with pytest.raises(UsageError, match="expected an https:// URL"):
        check_base_url("http://example.com/u")
    assert check_base_url(" https://example.com/u ") == "https://example.com/u"


def test_messages_carry_one_click_headers(tmp_path: object) -> None:
    """A composer with a one-click link: List-Unsubscribe holds the recipient's link (its token
    reads back to the address) and List-Unsubscribe-Post says One-Click."""
    one_click = OneClick("https://mail.example.com/unsubscribe?list=7", SECRET)
    composer = Composer(
        load_template(EXAMPLE_TEMPLATE),
        sender="HR <hr@example.com>",
        campaign_key="k",
        base_dir=EXAMPLE_TEMPLATE.parent,
        one_click=one_click,
    )
    variables = {"email": "ann@example.org", "name": "Ann", "language": "en",
                 "worker_id": "W1", "site": "North", "shift_date": "2026-06-10"}  # fmt: skip
    message = message_from_bytes(composer.render(variables), policy=default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"]).strip("<>")
    parts = urlsplit(link)
    assert link.startswith("https://mail.example.com/unsubscribe?list=7&t=")
    assert read_token(SECRET, parse_qs(parts.query)["t"][0]) == "ann@example.org"
