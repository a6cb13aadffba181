"""``mailpacer serve`` benchmarks of issue 11, each on a sandbox in its own process and a fresh
SQLite file, the service a real uvicorn on 127.0.0.1:

- ``throughput``: N messages on the ``unlimited`` profile through ``mailpacer send --server``
  (the service sends) vs a local ``mailpacer send``: msg/s of the run (the report's
  ``throughput``) and end to end (the command's wall time, upload and start included); ratio.
- ``listeners``: the service's CPU (utime + stime of its process, per second of wall time)
  while one campaign runs on the ``strict`` profile (paced by the server, so the send rate is
  the same), with 0 and with L SSE listeners on that campaign.
- ``shared``: three N-message campaigns at once on ``strict`` vs one alone: total throughput
  (all messages over the time from the creates to the last one done), the ratio, the sandbox's
  peak concurrent connections and replies >= 400 per 100 messages.

    .venv/bin/python bench/serve_client.py throughput [--messages 5000]
    .venv/bin/python bench/serve_client.py listeners [--listeners 100] [--seconds 8]
    .venv/bin/python bench/serve_client.py shared [--messages 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "acceptance"))
import httpx
from service_helpers import ENV, SENDER, TEMPLATE, TOKEN, Served, recipients

from capacity import SandboxProcess

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@contextmanager
def service(folder: Path, profile: str) -> Iterator[tuple[Served, SandboxProcess]]:
    """A sandbox process and a ``serve`` with route ``sandbox`` and template ``hello``."""
    sb = SandboxProcess(profile)
    config = folder / "mailpacer.toml"
    config.write_text(f'[routes.sandbox]\nurl = "smtp://{sb.host}:{sb.port}"\n', encoding="utf-8")
    served = Served(folder, config).start()
    try:
        with served.client() as client:
            assert client.post("/api/templates", json=TEMPLATE).status_code == 201
        yield served, sb
    finally:
        served.stop()


def write_list(path: Path, count: int, prefix: str = "w") -> Path:
    with path.open("w", encoding="utf-8") as f:
        f.write("email,name,code\n")
        for row in recipients(count, prefix=prefix):
            f.write(f"{row['email']},{row['name']},{row['code']}\n")
    return path


def run_cli(*args: str | Path, cwd: Path) -> tuple[dict[str, Any], float]:
    """The CLI's ``--json`` report and its wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mailpacer", *map(str, args), "--json"],
        cwd=cwd, env={**ENV, "MAILPACER_API_TOKEN": TOKEN}, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    assert done.stdout.strip(), done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report, wall


# -- serve vs send -------------------------------------------------------------------------


def throughput(messages: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        staff = write_list(folder / "staff.csv", messages)
        template = folder / "hello"
        (template / "en").mkdir(parents=True)
        (template / "en" / "subject.txt").write_text("Hello {{ name }}\n", encoding="utf-8")
        (template / "en" / "body.txt").write_text("Dear {{ name }}: {{ code }}.\n", "utf-8")
        common = ("--template", template, "--from", SENDER)
        with service(folder, "unlimited") as (served, sb):
            report, wall = run_cli(
                "send", staff, *common, "--route", "sandbox", "--server", served.url, cwd=folder
            )
            ids, _replies, _peak = sb.stop()
        rows.append(("serve (send --server)", report, wall, len(ids), len(set(ids))))
        sb = SandboxProcess("unlimited")
        smtp = f"smtp://{sb.host}:{sb.port}"
        report, wall = run_cli(
            "send", staff, *common, "--smtp", smtp, "--db", folder / "local.db", cwd=folder
        )
        ids, _replies, _peak = sb.stop()
        rows.append(("send (local)", report, wall, len(ids), len(set(ids))))
    print("| how | messages | sent | run msg/s | end-to-end s | end-to-end msg/s | dup |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for how, report, wall, count, unique in rows:
        print(
            f"| {how} | {messages} | {report['sent']} | {report['throughput']:.1f} |"
            f" {wall:.2f} | {messages / wall:.1f} | {count - unique} |"
        )
    (_, serve_report, serve_wall, *_), (_, send_report, send_wall, *_) = rows
    print(
        f"\nserve ÷ send: run {serve_report['throughput'] / send_report['throughput']:.1%},"
        f" end to end {send_wall / serve_wall:.1%}"
    )


# -- SSE listeners ---------------------------------------------------------------------------


async def listen(url: str, path: str, count: int, stop: asyncio.Event) -> list[int]:
    """``count`` SSE streams on ``path`` until ``stop``; events each received."""
    received = [0] * count
    limits = httpx.Limits(max_connections=count + 5)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:

        async def one(i: int) -> None:
            timeout = httpx.Timeout(10, read=60)
            async with client.stream("GET", path, timeout=timeout) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        received[i] += 1
                    if stop.is_set():
                        return

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return received


async def measure(served: Served, listeners: int, seconds: float, messages: int) -> dict[str, Any]:
    assert served.process is not None
    pid = served.process.pid
    async with httpx.AsyncClient(
        base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as client:
        body = {
            "template": "hello", "route": "sandbox", "sender": SENDER, "start": False,
            "recipients": recipients(messages, prefix=f"l{listeners}x"),
        }  # fmt: skip
        made = (await client.post("/api/campaigns", json=body)).json()
        path = f"/api/campaigns/{made['id']}/events"
        stop = asyncio.Event()
        listening = asyncio.create_task(listen(served.url, path, listeners, stop))
        await asyncio.sleep(1.0)  # the streams are open
        await client.post(f"/api/campaigns/{made['id']}/resume")
        await asyncio.sleep(1.0)  # the run is under way
        before_sent = (await client.get(f"/api/campaigns/{made['id']}")).json()["counts"]["sent"]
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        after = (await client.get(f"/api/campaigns/{made['id']}")).json()
        stop.set()
        received = await listening
        await client.post(f"/api/campaigns/{made['id']}/cancel")
    return {
        "listeners": listeners,
        "cpu_per_s": (cpu1 - cpu0) / (t1 - t0),
        "msg_per_s": (after["counts"]["sent"] - before_sent) / (t1 - t0),
        "events_each": min(received) if received else 0,
        "state": after["state"],
    }


def listeners_bench(listeners: int, seconds: float, messages: int) -> None:
    results = []
    for count in (0, listeners):
        with tempfile.TemporaryDirectory() as tmp, service(Path(tmp), "strict") as (served, sb):
            results.append(asyncio.run(measure(served, count, seconds, messages)))
            sb.stop()
    print("| SSE listeners | service CPU s per s | msg/s meanwhile | events each listener got |")
    print("|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['listeners']} | {r['cpu_per_s']:.3f} | {r['msg_per_s']:.1f} |"
            f" {r['events_each']} |"
        )
    print(f"\nratio {results[1]['cpu_per_s'] / results[0]['cpu_per_s']:.2f}×")


# -- three campaigns on one route --------------------------------------------------------------


def run_campaigns(served: Served, count: int, messages: int) -> dict[str, Any]:
    with served.client() as client:
        started = time.time()
        ids = []
        for c in range(count):
            body = {
                "template": "hello", "route": "sandbox", "sender": SENDER,
                "recipients": recipients(messages, prefix=f"c{c}x"),
            }  # fmt: skip
            answer = client.post("/api/campaigns", json=body)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            got = [client.get(f"/api/campaigns/{i}").json() for i in ids]
            if all(c["state"] in ("done", "cancelled", "paused") for c in got):
                break
            time.sleep(0.2)
    ended = max(c["updated_at"] for c in got)
    return {
        "seconds": ended - started,
        "each": [round(c["updated_at"] - started, 1) for c in got],
        "sent": sum(c["counts"]["sent"] for c in got),
        "states": "/".join(c["state"] for c in got),
        "learned": got[0]["limits_text"],
    }


def shared(messages: int) -> None:
    rows = []
    for count in (1, 3):
        with tempfile.TemporaryDirectory() as tmp, service(Path(tmp), "strict") as (served, sb):
            result = run_campaigns(served, count, messages)
            ids, replies, peak = sb.stop()
        refused = sum(n for code, n in replies.items() if code >= 400)
        rows.append((count, result, peak, refused, len(ids) - len(set(ids))))
    alone = rows[0][1]["sent"] / rows[0][1]["seconds"]
    print(
        "| campaigns | sent | seconds | msg/s | ÷ alone | each campaign's s | peak connections"
        " | replies ≥ 400 per 100 | dup | states | learned |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|---|---|")
    for count, r, peak, refused, dup in rows:
        rate = r["sent"] / r["seconds"]
        print(
            f"| {count} × {messages} | {r['sent']} | {r['seconds']:.1f} | {rate:.1f} |"
            f" {rate / alone:.1%} | {', '.join(map(str, r['each']))} | {peak} |"
            f" {100 * refused / max(r['sent'], 1):.2f} | {dup} | {r['states']} | {r['learned']} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bench", choices=["throughput", "listeners", "shared"])
    parser.add_argument("--messages", type=int)
    parser.add_argument("--listeners", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if args.bench == "throughput":
        throughput(args.messages or 5000)
    elif args.bench == "listeners":
        listeners_bench(args.listeners, args.seconds, args.messages or 2000)
    else:
        shared(args.messages or 1000)


if __name__ == "__main__":
    main()
