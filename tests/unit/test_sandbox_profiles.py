"""Sandbox profiles as data: capacities from the formula, validation, lookup."""

from __future__ import annotations

import dataclasses
import math

import pytest

from mailpacer.core.errors import NotFound, UsageError
from mailpacer.sandbox import PROFILES, get_profile
from mailpacer.sandbox.records import message_id_of


def test_required_profiles_exist() -> None:
    """Every profile the issue names is built in."""
    assert set(PROFILES) >= {
        "strict",
        "exchange-like",
        "rate-limited",
        "flaky",
        "quota",
        "auth-tls",
        "unlimited",
        "ses-like",
        "o365-like",
        "pipelining",
        "firewall",
        "fivexx-rate",
    }


@pytest.mark.parametrize(
    ("name", "capacity"),
    [
        ("strict", 2 / (3 * 0.004 + 0.018)),
        ("exchange-like", 3 / (3 * 0.005 + 0.028 + (0.010 + 2 * 0.005) / 20)),
        ("rate-limited", 3600 / 60),
        ("flaky", 4 / (3 * 0.002 + 0.006)),
        ("auth-tls", 4 / (3 * 0.002 + 0.006)),
        ("ses-like", 3600 / 60),  # 4 / (3*0.004 + 0.020 + (0.010 + 2*0.004)/50) = 123.6 is more
        ("o365-like", 3 / (3 * 0.008 + 0.030)),
        ("pipelining", 3 / (3 * 0.005 + 0.025 + (0.010 + 2 * 0.005) / 25)),  # MAILMAX=25
        ("firewall", 3 / (3 * 0.004 + 0.024)),
        ("fivexx-rate", 3600 / 60),
        ("unlimited", math.inf),
    ],
)
def test_capacity_follows_the_formula(name: str, capacity: float) -> None:
    """capacity = min(max_connections / t, rate/60), t from the latencies (formula by hand)."""
    assert get_profile(name).capacity == pytest.approx(capacity)


@pytest.mark.parametrize("name", ["strict", "exchange-like", "rate-limited"])
def test_thousand_messages_take_10_to_30_seconds_at_capacity(name: str) -> None:
    """The campaign-sized profiles are neither instant nor slow: 1,000 messages in 10-30 s."""
    assert 10 <= 1000 / get_profile(name).capacity <= 30


@pytest.mark.parametrize("name", ["ses-like", "o365-like", "pipelining", "firewall", "fivexx-rate"])
def test_new_wording_profiles_allow_50_to_100_messages_a_second(name: str) -> None:
    """The profiles that word their limits differently are campaign-sized too: 50-100/s, so a
    1,000-message test takes 10-20 s at capacity."""
    assert 50 <= get_profile(name).capacity <= 100


def test_mailmax_caps_messages_per_connection_like_the_profile_cap() -> None:
    """LIMITS MAILMAX below max_messages_per_connection is the enforced cap, and the formula
    spreads the connection's cost over it; a larger MAILMAX changes nothing."""
    base = get_profile("exchange-like")  # 20 per connection
    lower = dataclasses.replace(base, ehlo_limits="MAILMAX=5 RCPTMAX=50")
    higher = dataclasses.replace(base, ehlo_limits="MAILMAX=100")
    only = dataclasses.replace(get_profile("strict"), ehlo_limits="MAILMAX=4")
    assert (lower.messages_per_connection, higher.messages_per_connection) == (5, 20)
    assert lower.limits == {"MAILMAX": 5, "RCPTMAX": 50}
    c = base.command_latency
    assert lower.seconds_per_message == pytest.approx(3 * c + 0.028 + (0.010 + 2 * c) / 5)
    assert higher.capacity == base.capacity
    assert only.seconds_per_message == pytest.approx(3 * 0.004 + 0.018 + (0.005 + 2 * 0.004) / 4)


def test_pipelining_and_refusal_modes_do_not_change_capacity() -> None:
    """PIPELINING and how a limit is refused change what a client learns, not the maximum."""
    base = get_profile("exchange-like")
    other = dataclasses.replace(
        base, pipelining=True, connection_refusal="close", per_connection_refusal="close"
    )
    assert other.capacity == base.capacity


def test_per_connection_cap_with_auth_counts_the_tls_handshake_commands() -> None:
    """With STARTTLS+AUTH a connection costs three more commands, spread over its messages."""
    base = dataclasses.replace(
        get_profile("auth-tls"), max_messages_per_connection=10, greeting_latency=0.01
    )
    c = base.command_latency
    assert base.seconds_per_message == pytest.approx(3 * c + 0.006 + (0.01 + 5 * c) / 10)


def test_unknown_profile_lists_the_known_ones() -> None:
    """An unknown name raises NotFound naming every profile."""
    with pytest.raises(NotFound) as info:
        get_profile("gmail")
    for name in PROFILES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        {"fault_probability": 1.5},
        {"drop_probability": -0.1},
        {"max_connections": 0},
        {"rate_per_minute": 0.0},
        {"rate_burst": 0},
        {"quota_window_seconds": 0.0},
        {"command_latency": -1.0},
        {"greylist_seconds": -1.0},
        {"connection_refusal": "drop"},
        {"drop_at": "QUIT"},
        {"per_connection_refusal": "greeting"},
        {"ehlo_limits": "MAILMAX"},
        {"ehlo_limits": "MAILMAX=0"},
        {"ehlo_limits": "mailmax=5"},
        {"ehlo_limits": " "},
        {"rate_reply": "250 fine"},
        {"rate_reply": "Too much mail"},
        {"rate_reply": "450slow"},
        {"fault_reply": "451 one\r\n451 two"},
        {"quota_reply": "550 over {limit}"},
        {"connection_reply": "421 {0} busy"},
    ],
)
def test_invalid_overrides_are_refused(change: dict[str, object]) -> None:
    """dataclasses.replace with an impossible value raises a UsageError naming the field."""
    with pytest.raises(UsageError, match=next(iter(change))):
        dataclasses.replace(get_profile("strict"), **change)


def test_5xx_reply_templates_are_accepted() -> None:
    """A limit may be signalled with a 5xx, at the greeting too."""
    profile = dataclasses.replace(
        get_profile("strict"),
        connection_reply="554 5.7.1 {host} not accepting connections from {ip}",
        rate_per_minute=60.0,
        rate_reply="554 5.7.1 Sending rate exceeded, slow down",
    )
    assert profile.reply(profile.connection_reply).startswith("554 5.7.1 mx.strict.")


def test_behaviours_describe_the_new_switches() -> None:
    """--list-profiles says when PIPELINING and LIMITS are offered and how refusals happen."""
    lines = get_profile("pipelining").behaviours()
    assert "EHLO offers PIPELINING (RFC 2920)" in lines
    assert any(
        line.startswith("EHLO offers LIMITS MAILMAX=25 RCPTMAX=50 (RFC 9422); enforced: MAILMAX")
        and "452 4.5.3 Too many recipients" in line
        for line in lines
    )
    assert "25 messages per connection, then MAIL: connection closed without a reply" in lines
    rcpt_drop = dataclasses.replace(get_profile("unlimited"), drop_probability=0.5, drop_at="RCPT")
    assert (
        "drop at RCPT p=0.5 (seed 0): connection closed without reply, nothing recorded"
        in rcpt_drop.behaviours()
    )
    firewall = get_profile("firewall").behaviours()
    assert "3 concurrent connections per IP, then closed at once without a greeting" in firewall
    o365 = get_profile("o365-like").behaviours()
    assert any("greeting: 432 4.3.2 Concurrent connections limit exceeded." in x for x in o365)


def test_behaviours_show_filled_in_replies() -> None:
    """--list-profiles lines carry the real reply text, placeholders filled in."""
    lines = get_profile("rate-limited").behaviours()
    assert any("450 4.7.1 Error: too much mail from 127.0.0.1" in line for line in lines)
    assert not any("{" in line for line in lines)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody", "<a@b>"),
        (b"message-id:   <a@b>  \r\n\r\n", "<a@b>"),
        (b"Message-ID:\r\n <folded@b>\r\nX: y\r\n\r\n", "<folded@b>"),
        (b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
        (b"Subject: x\r\n\r\n", None),
    ],
)
def test_message_id_is_read_from_the_header_only(raw: bytes, expected: str | None) -> None:
    """Message-ID comes from the header block (folded or not), never from the body."""
    assert message_id_of(raw) == expected
