"""The worker-qr example composed and delivered to the sandbox over SMTP: every message arrives
byte for byte, and the nouser addresses are refused with 550."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiosmtplib

from mailpacer.compose import Composer, iter_recipients, load_template, validate_campaign
from mailpacer.sandbox import Sandbox

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "worker-qr"


def test_example_campaign_through_the_sandbox(sandbox: Callable[..., Sandbox]) -> None:
    """Validate, render all 200 workers, send over one connection: 195 accepted with the exact
    bytes and Message-IDs we rendered (QR images and PDFs included), 5 nouser rejected."""
    sb = sandbox("unlimited")
    csv = EXAMPLE / "workers.csv"
    check = validate_campaign(
        csv, EXAMPLE / "templates", sender="Site Operations <ops@example.com>"
    )
    assert check.ok and check.valid == 200
    composer = Composer(
        load_template(EXAMPLE / "templates"),
        sender="Site Operations <ops@example.com>",
        campaign_key="it",
        base_dir=EXAMPLE,
    )
    rendered = {r.email: composer.render(r.variables) for r in iter_recipients(csv)}

    async def deliver() -> dict[str, int]:
        codes: dict[str, int] = {}
        async with aiosmtplib.SMTP(hostname=sb.host, port=sb.port, timeout=10) as client:
            for address, message in rendered.items():
                try:
                    await client.sendmail("ops@example.com", [address], message)
                    codes[address] = 250
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    codes[address] = exc.recipients[0].code
        return codes

    codes = asyncio.run(deliver())
    refused = sorted(a for a, code in codes.items() if code != 250)
    assert len(refused) == 5 and all(a.startswith("nouser.") for a in refused)
    assert {codes[a] for a in refused} == {550}
    received = {m.rcpt_tos[0]: m for m in sb.messages}
    assert set(received) == set(rendered) - set(refused)
    for address, accepted in received.items():
        assert accepted.data == rendered[address]
        assert accepted.message_id == composer.message_id(address)
