"""Sandbox profiles as data: capacities from the formula, validation, lookup."""

from __future__ import annotations

import dataclasses
import math

import pytest

from mailpacer.errors import NotFound, UsageError
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
    }


@pytest.mark.parametrize(
    ("name", "capacity"),
    [
        ("strict", 2 / (3 * 0.004 + 0.018)),
        ("exchange-like", 3 / (3 * 0.005 + 0.028 + (0.010 + 2 * 0.005) / 20)),
        ("rate-limited", 3600 / 60),
        ("flaky", 4 / (3 * 0.002 + 0.006)),
        ("auth-tls", 4 / (3 * 0.002 + 0.006)),
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
    ],
)
def test_invalid_overrides_are_refused(change: dict[str, float]) -> None:
    """dataclasses.replace with an impossible value raises a UsageError naming the field."""
    with pytest.raises(UsageError, match=next(iter(change))):
        dataclasses.replace(get_profile("strict"), **change)


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
