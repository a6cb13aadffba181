"""Seeded transient faults, drops after DATA, greylisting and unknown users, with plain smtplib."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from contextlib import closing

import pytest

from mailpacer.sandbox import Sandbox

QUIET = {"fault_probability": 0.0, "drop_probability": 0.0, "greylist_seconds": None}


def connect(sb: Sandbox) -> smtplib.SMTP:
    """A plain smtplib client connected to the sandbox."""
    client = smtplib.SMTP(sb.host, sb.port, local_hostname="client.test", timeout=10)
    client.ehlo()
    return client


def body(n: int) -> bytes:
    """A small message with a Message-ID."""
    return f"Subject: {n}\r\nMessage-ID: <{n}@client.test>\r\n\r\nhello\r\n".encode()


def outcomes(sb: Sandbox, count: int) -> list[tuple[int, bytes]]:
    """Send ``count`` messages one after another on one connection; the replies after DATA."""
    replies = []
    with closing(connect(sb)) as client:
        for n in range(count):
            assert client.mail("sender@client.test")[0] == 250
            assert client.rcpt(f"worker{n}@example.com")[0] == 250
            replies.append(client.data(body(n)))
        client.quit()
    return replies


def test_faults_are_451_4_3_0_and_repeatable_by_seed(sandbox: Callable[..., Sandbox]) -> None:
    """Faults after DATA are 451 4.3.0; the same seed gives the same sequence, another seed a
    different one; faulted messages are not recorded."""
    flaky = {**QUIET, "fault_probability": 0.3, "command_latency": 0.0, "data_latency": 0.0}
    first = outcomes(sandbox("flaky", seed=7, **flaky), 40)
    again = outcomes(sandbox("flaky", seed=7, **flaky), 40)
    other = outcomes(sandbox("flaky", seed=8, **flaky), 40)
    assert first == again
    assert [code for code, _ in first] != [code for code, _ in other]
    codes = {code for code, _ in first}
    assert codes == {250, 451}
    assert {text for code, text in first if code == 451} == {b"4.3.0 Error: queue file write error"}


def test_faulted_messages_are_not_recorded(sandbox: Callable[..., Sandbox]) -> None:
    """Only messages answered 250 are in the record."""
    sb = sandbox("flaky", **{**QUIET, "fault_probability": 0.5})
    replies = outcomes(sb, 20)
    accepted = [n for n, (code, _) in enumerate(replies) if code == 250]
    assert [m.message_id for m in sb.messages] == [f"<{n}@client.test>" for n in accepted]
    assert sb.counters.count(451) == 20 - len(accepted)


def test_drop_after_data_records_the_message_and_closes_without_reply(
    sandbox: Callable[..., Sandbox],
) -> None:
    """Drop after DATA: the client sees a disconnect instead of a reply, yet the message is
    recorded (marked dropped) and the connection's slot is free again."""
    sb = sandbox("flaky", **{**QUIET, "drop_probability": 1.0, "max_connections": 1})
    client = connect(sb)
    try:
        assert client.mail("sender@client.test")[0] == 250
        assert client.rcpt("worker@example.com")[0] == 250
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.data(body(1))
    finally:
        client.close()
    [record] = sb.messages
    assert record.message_id == "<1@client.test>"
    assert record.dropped
    assert record.rcpt_tos == ("worker@example.com",)
    assert sb.counters.dropped == 1
    assert sb.counters.count(250) == 3  # EHLO, MAIL, RCPT: nothing after DATA
    with closing(connect(sb)) as again:  # max_connections=1: the slot was given back
        again.quit()


def test_greylisted_recipient_is_accepted_after_the_delay(sandbox: Callable[..., Sandbox]) -> None:
    """Greylisting: the first RCPT per (IP, recipient) gets 451 4.7.1 with the delay, retries
    inside it too; after the delay the recipient is accepted and stays accepted."""
    sb = sandbox("flaky", **{**QUIET, "greylist_seconds": 1.0})
    with closing(connect(sb)) as client:
        assert client.mail("sender@client.test")[0] == 250
        assert client.rcpt("worker@example.com") == (
            451,
            b"4.7.1 <worker@example.com>: Recipient address rejected: Greylisted, please try "
            b"again in 1 seconds",
        )
        first_try_by = time.monotonic()
        assert client.rcpt("worker@example.com")[0] == 451
        client.rset()
        time.sleep(max(0.0, 1.05 - (time.monotonic() - first_try_by)))
        assert client.mail("sender@client.test")[0] == 250
        assert client.rcpt("worker@example.com")[0] == 250
        assert client.rcpt("other@example.com")[0] == 451  # its own first try
        assert client.data(body(1))[0] == 250
        assert client.mail("sender@client.test")[0] == 250
        assert client.rcpt("worker@example.com")[0] == 250  # remembered
        client.rset()
        client.quit()
    assert sb.messages[0].rcpt_tos == ("worker@example.com",)


def test_unknown_user_gets_550_5_1_1_at_rcpt(sandbox: Callable[..., Sandbox]) -> None:
    """A recipient whose local part starts with `nouser` is refused with 550 5.1.1; the other
    recipients of the same message are delivered."""
    sb = sandbox("unlimited")
    with closing(connect(sb)) as client:
        refused = client.sendmail(
            "sender@client.test", ["nouser7@example.com", "worker@example.com"], body(1)
        )
        client.quit()
    assert refused == {
        "nouser7@example.com": (
            550,
            b"5.1.1 <nouser7@example.com>: Recipient address rejected: User unknown in local "
            b"recipient table",
        )
    }
    assert sb.messages[0].rcpt_tos == ("worker@example.com",)
