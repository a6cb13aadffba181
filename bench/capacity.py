"""Throughput as a share of each sandbox profile's capacity: mailpacer vs. two peers, one run.

Peers, measured in the same run against the same profiles:
- ``serial``: the usual fix — one connection, one message a second, two seconds between batches
  of two (what the seed's bulk sender did after hitting 421);
- ``gather``: a naive ``asyncio.gather`` of one ``aiosmtplib.send`` per message, no pacing.

The sandbox runs in its own process so it does not share the interpreter lock with the sender.
mailpacer is told nothing about the limits. Run:

    .venv/bin/python bench/capacity.py [--messages 1000] [--serial-messages 8]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import hashlib
import multiprocessing as mp
import tempfile
import time
from collections.abc import Mapping
from email.message import EmailMessage
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import aiosmtplib

from mailpacer.config.campaign import CampaignSettings
from mailpacer.core.retry import RetryPolicy
from mailpacer.core.route import Route
from mailpacer.delivery import runner
from mailpacer.sandbox import Sandbox, get_profile
from mailpacer.store import NewMessage, open_store

SENDER = "bench@example.com"
PROFILES = [
    "strict",
    "exchange-like",
    "rate-limited",
    "ses-like",
    "o365-like",
    "pipelining",
    "firewall",
    "fivexx-rate",
    "flaky",
]


def _serve(name: str, overrides: dict[str, Any], pipe: Pipe) -> None:
    """Child process: run one sandbox until told to stop, then report what it saw."""
    profile = dataclasses.replace(get_profile(name), **overrides)
    with Sandbox(profile, port=0) as sb:
        pipe.send((sb.host, sb.port, sb.profile.capacity))
        pipe.recv()
        counters = sb.counters
        ids = [m.message_id for m in sb.messages]
        pipe.send((ids, dict(counters.replies), counters.peak_concurrent))


class SandboxProcess:
    """A sandbox in a child process; ``stop()`` returns (message ids, replies by code, peak)."""

    def __init__(self, name: str, **overrides: Any) -> None:
        self._pipe, child = mp.Pipe()
        self._proc = mp.get_context("spawn").Process(target=_serve, args=(name, overrides, child))
        self._proc.start()
        self.host, self.port, self.capacity = self._pipe.recv()

    def stop(self) -> tuple[list[str], dict[int, int], int]:
        self._pipe.send("stop")
        result: tuple[list[str], dict[int, int], int] = self._pipe.recv()
        self._proc.join(timeout=10)
        return result


def message_id(email: str) -> str:
    return f"<{hashlib.sha256(email.encode()).hexdigest()[:20]}@example.com>"


def render(variables: Mapping[str, str]) -> bytes:
    email = variables["email"]
    return (
        f"From: {SENDER}\r\nTo: {email}\r\nSubject: check-in code\r\n"
        f"Message-ID: {message_id(email)}\r\n\r\nYour code is {variables['code']}.\r\n"
    ).encode()


def recipients(count: int) -> list[str]:
    return [f"worker{i}@example.com" for i in range(count)]


def run_mailpacer(host: str, port: int, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.db")
        record, _ = store.get_or_create_campaign("bench", name="bench", route_key="b", options={})
        store.add_messages(
            record.id,
            (
                NewMessage(i + 1, e, {"email": e, "code": str(i)})
                for i, e in enumerate(recipients(count))
            ),
        )
        settings = CampaignSettings(
            recipients=Path("bench.csv"),
            template=Path("templates"),
            route=Route(host=host, port=port, timeout=10.0),
            sender=SENDER,
            retry=RetryPolicy(
                max_attempts=12, base_seconds=0.5, cap_seconds=5.0, max_age_seconds=300.0
            ),
        )
        started = time.perf_counter()
        report = asyncio.run(runner.run(store, record, settings, render))
        seconds = time.perf_counter() - started
        store.close()
    return {
        "sent": report.sent,
        "failed": report.failed,
        "uncertain": report.uncertain,
        "seconds": seconds,
        "limits": report.limits_text,
    }


def _message(email: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, email, "check-in code"
    msg["Message-ID"] = message_id(email)
    msg.set_content("Your code is 42.")
    return msg


async def _serial(host: str, port: int, count: int) -> dict[str, Any]:
    """One connection, one message a second, two seconds between batches of two."""
    sent = failed = 0
    started = time.perf_counter()
    smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False)
    await smtp.connect()
    for i, email in enumerate(recipients(count)):
        try:
            if not smtp.is_connected:
                await smtp.connect()
            await smtp.send_message(_message(email))
            sent += 1
        except aiosmtplib.SMTPException:
            failed += 1
        await asyncio.sleep(1.0)
        if i % 2 == 1:
            await asyncio.sleep(2.0)
    seconds = time.perf_counter() - started
    if smtp.is_connected:
        await smtp.quit()
    return {"sent": sent, "failed": failed, "seconds": seconds}


async def _gather(host: str, port: int, count: int) -> dict[str, Any]:
    """Every message at once, each on its own connection, no retries."""

    async def one(email: str) -> bool:
        try:
            await aiosmtplib.send(
                _message(email), hostname=host, port=port, timeout=20, start_tls=False
            )
        except aiosmtplib.SMTPException:
            return False
        return True

    started = time.perf_counter()
    results = await asyncio.gather(*(one(e) for e in recipients(count)))
    return {
        "sent": sum(results),
        "failed": count - sum(results),
        "seconds": time.perf_counter() - started,
    }


async def _told(host: str, port: int, count: int, profile: str) -> dict[str, Any]:
    """A client hand-told the profile's limits: its connections, per-connection cap and rate,
    raw commands, no retries. Shows what the sandbox lets a perfect client achieve."""
    p = get_profile(profile)
    conns = p.max_connections or 4
    cap = p.messages_per_connection
    interval = 60.0 / p.rate_per_minute if p.rate_per_minute else 0.0
    emails = iter(recipients(count))
    started = time.perf_counter()
    slot = [started]
    sent = failed = 0

    async def one_connection() -> None:
        nonlocal sent, failed
        smtp: aiosmtplib.SMTP | None = None
        on_conn = 0
        for email in emails:
            if smtp is None or not smtp.is_connected or (cap and on_conn >= cap):
                if smtp is not None and smtp.is_connected:
                    await smtp.quit()
                smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=20, start_tls=False)
                await smtp.connect()
                await smtp.ehlo()
                on_conn = 0
            if interval:
                slot[0] = max(slot[0] + interval, time.perf_counter())
                await asyncio.sleep(slot[0] - time.perf_counter())
            try:
                await smtp.execute_command(b"MAIL", b"FROM:<" + SENDER.encode() + b">")
                rcpt = await smtp.execute_command(b"RCPT", b"TO:<" + email.encode() + b">")
                if rcpt.code != 250:
                    await smtp.execute_command(b"RSET")
                    failed += 1
                    continue
                await smtp.execute_command(b"DATA")
                assert smtp.protocol is not None
                smtp.protocol.write(render({"email": email, "code": "1"}) + b".\r\n")
                reply = await smtp.protocol.read_response()
            except aiosmtplib.SMTPException:
                failed += 1  # no retries: a hand-tuned client does not learn either
                smtp.close()
                smtp = None
                continue
            sent, failed = (sent + 1, failed) if reply.code == 250 else (sent, failed + 1)
            on_conn += 1
        if smtp is not None and smtp.is_connected:
            await smtp.quit()

    await asyncio.gather(*(one_connection() for _ in range(conns)))
    return {"sent": sent, "failed": failed, "seconds": time.perf_counter() - started}


def measure(profile: str, who: str, count: int) -> dict[str, Any]:
    sb = SandboxProcess(profile)
    try:
        if who == "mailpacer":
            result = run_mailpacer(sb.host, sb.port, count)
        elif who == "told":
            result = asyncio.run(_told(sb.host, sb.port, count, profile))
        elif who == "serial":
            result = asyncio.run(_serial(sb.host, sb.port, count))
        else:
            result = asyncio.run(_gather(sb.host, sb.port, count))
    finally:
        ids, replies, peak = sb.stop()
    received = collections.Counter(ids)
    result["capacity"] = sb.capacity
    result["ratio"] = result["sent"] / result["seconds"] / sb.capacity if result["seconds"] else 0.0
    # every recipient exists, so each reply of 400 or above is a limit or a fault (5xx "slow down")
    result["throttles_per_100"] = 100 * sum(n for c, n in replies.items() if c >= 400) / count
    result["duplicates"] = sum(n - 1 for n in received.values() if n > 1)
    result["lost"] = count - len(received) - result["failed"]
    result["peak_connections"] = peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--serial-messages", type=int, default=8)
    parser.add_argument("--profiles", default=",".join(PROFILES))
    args = parser.parse_args()
    rows = []
    for profile in args.profiles.split(","):
        ours = measure(profile, "mailpacer", args.messages)
        serial = measure(profile, "serial", args.serial_messages)
        gather = measure(profile, "gather", args.messages)
        told = measure(profile, "told", args.messages)
        rows.append((profile, ours, serial, gather, told))
        print(f"{profile}: mailpacer {ours}\n  serial {serial}\n  gather {gather}", flush=True)
        print(f"  told {told}", flush=True)
    print()
    print(
        "| profile | capacity msg/s | mailpacer: share of capacity | throttles/100 "
        "| sent/failed/uncertain | duplicates | learned | serial: share "
        "| gather: sent of N | gather throttles/100 | hand-told client: share | mailpacer / told |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for profile, ours, serial, gather, told in rows:
        print(
            f"| {profile} | {ours['capacity']:.1f} | {ours['ratio']:.1%} "
            f"| {ours['throttles_per_100']:.2f} "
            f"| {ours['sent']}/{ours['failed']}/{ours['uncertain']} | {ours['duplicates']} "
            f"| {ours['limits']} | {serial['ratio']:.1%} | {gather['sent']}/{args.messages} "
            f"| {gather['throttles_per_100']:.1f} | {told['ratio']:.1%} "
            f"| {ours['ratio'] / told['ratio'] if told['ratio'] else 0:.1%} |"
        )


if __name__ == "__main__":
    main()
