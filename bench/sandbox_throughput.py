"""Accepted messages/s of the ``unlimited`` sandbox profile under 8 concurrent plain clients.

The sandbox runs as ``mailpacer sandbox`` in its own process (so server and load generator do not
share a GIL); the load generator is 8 aiosmtplib connections, each reused for every message.

    .venv/bin/python bench/sandbox_throughput.py [--seconds 10] [--connections 8] [--mailbox]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

SENDER = "bench@sender.test"
LISTENING = re.compile(r"listening on ([\d.]+):(\d+)")


def _message(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Bench <bench@sender.test>"
    msg["To"] = f"worker{n}@receiver.test"
    msg["Subject"] = f"Check-in code {n}"
    msg["Message-ID"] = f"<bench-{n}@sender.test>"
    msg.set_content(f"Hello worker {n},\n\n" + "Your check-in code is attached.\n" * 20)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


async def _client(host: str, port: int, stop_at: float, start: int) -> int:
    """Send messages on one connection until ``stop_at``; return how many were accepted."""
    # Pre-rendered bytes: the load generator should spend its CPU on SMTP, not on email.message.
    messages = [_message(start + i) for i in range(64)]
    sent = 0
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False) as smtp:
        while time.monotonic() < stop_at:
            await smtp.sendmail(
                SENDER, [f"worker{start + sent}@receiver.test"], messages[sent % len(messages)]
            )
            sent += 1
    return sent


async def _load(host: str, port: int, connections: int, seconds: float) -> tuple[int, float]:
    t0 = time.monotonic()
    stop_at = t0 + seconds
    counts = await asyncio.gather(
        *(_client(host, port, stop_at, i * 10_000_000) for i in range(connections))
    )
    return sum(counts), time.monotonic() - t0


def _cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--mailbox", action="store_true", help="also write mailbox.jsonl + .eml")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "mailpacer",
            "sandbox",
            "--profile",
            "unlimited",
            "--port",
            "0",
        ]
        if args.mailbox:
            cmd += ["--mailbox", str(Path(tmp) / "mailbox")]
        server = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            match = LISTENING.search(line)
            if match is None:
                print(f"sandbox did not start: {line!r}", file=sys.stderr)
                return 1
            host, port = match.group(1), int(match.group(2))
            cpu0 = time.process_time()
            sent, elapsed = asyncio.run(_load(host, port, args.connections, args.seconds))
            client_cpu = time.process_time() - cpu0
            server_cpu = _cpu_seconds(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            out, _ = server.communicate(timeout=30)
        stopped = re.search(r"stopped: (\d+) messages accepted", out)
        accepted = int(stopped.group(1)) if stopped else -1
    rate = sent / elapsed
    per_message = server_cpu / max(sent, 1)
    print(
        f"CPU: sandbox {server_cpu:.1f} s ({per_message * 1e6:.0f} us/message, i.e. "
        f"{1 / per_message:.0f} messages/s per core), load generator {client_cpu:.1f} s"
    )
    print(
        f"unlimited, {args.connections} connections, {elapsed:.1f} s: {sent} messages "
        f"accepted by the client, {accepted} recorded by the sandbox -> {rate:.0f} messages/s"
    )
    return 0 if accepted == sent else 1


if __name__ == "__main__":
    sys.exit(main())
