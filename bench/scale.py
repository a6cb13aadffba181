"""Scale-out: N `mailpacer send` processes on one campaign and one database, sharing the route.

For each store (SQLite file, PostgreSQL when reachable) and each N, a fresh database and a fresh
sandbox; reports messages/s together, its ratio to one process alone and to the profile's
capacity, the most connections the server saw at once and the 4xx replies it sent.

    .venv/bin/python bench/scale.py [--rows 1000] [--profile strict] [--max-connections 4]
                                    [--workers 1,2,3] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from mailpacer.sandbox import Sandbox, get_profile

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "worker-qr"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MAILPACER_")}


def campaign(folder: Path, rows: int) -> Path:
    """The worker-qr example with ``rows`` recipients under new addresses."""
    shutil.copytree(EXAMPLE, folder)
    source = folder / "workers.csv"
    with source.open(encoding="utf-8-sig", newline="") as f:
        original = [r for r in csv.DictReader(f) if not r["email"].startswith("nouser")]
    with source.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(original[0]))
        writer.writeheader()
        for i in range(rows):
            row = dict(original[i % len(original)])
            local, _, domain = row["email"].partition("@")
            writer.writerow({**row, "email": f"{local}.{i}@{domain}"})
    return folder


def run(n: int, db: str, sb: Sandbox, folder: Path) -> float:
    """Seconds for ``n`` processes started at once to finish the campaign."""
    args = [
        sys.executable, "-m", "mailpacer", "send", str(folder / "workers.csv"),
        "--template", str(folder / "templates"), "--smtp", f"smtp://{sb.host}:{sb.port}",
        "--from", "HR <hr@example.com>", "--db", db, "--json",
    ]  # fmt: skip
    started = time.monotonic()
    procs = [
        subprocess.Popen(args, cwd=folder, env=ENV, stdout=subprocess.DEVNULL, text=True)
        for _ in range(n)
    ]
    for proc in procs:
        proc.wait(timeout=1800)
    return time.monotonic() - started


def pg_schema(base: str) -> tuple[str, str] | None:
    """A fresh schema on the PostgreSQL server and its URL, or None when unreachable."""
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return None
    name = f"mailpacer_bench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    sep = "&" if "?" in base else "?"
    return name, f"{base}{sep}options=-csearch_path%3D{name}"


def drop(base: str, name: str) -> None:
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA "{name}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--profile", default="strict")
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    opts = parser.parse_args()
    profile = get_profile(opts.profile)
    if opts.max_connections is not None:
        profile = dataclasses.replace(profile, max_connections=opts.max_connections)
    print(f"{opts.rows} messages, profile {profile.name} (max_connections "
          f"{profile.max_connections}), capacity {profile.capacity:.0f} msg/s")  # fmt: skip
    print("seconds: start to the last process's exit; msg/s: first to last delivery")
    print(f"{'store':8} {'N':>2} {'seconds':>8} {'msg/s':>7} {'vs 1':>5} {'of cap':>6}"
          f" {'peak conns':>10} {'4xx':>4}")  # fmt: skip
    for store in ("sqlite", "postgres"):
        alone = None
        for n in [int(x) for x in opts.workers.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                folder = campaign(Path(tmp) / "c", opts.rows)
                made = None
                if store == "sqlite":
                    db = str(Path(tmp) / "mp.db")
                else:
                    made = pg_schema(opts.pg)
                    if made is None:
                        print("postgres: not reachable, skipped")
                        break
                    db = made[1]
                with Sandbox(profile, keep_data=False) as sb:
                    seconds = run(n, db, sb, folder)
                    counters = sb.counters
                    times = sorted(m.time for m in sb.messages)
                if made is not None:
                    drop(opts.pg, made[0])
            rate = (len(times) - 1) / (times[-1] - times[0])  # first to last delivery
            alone = alone or rate
            refusals = sum(v for (code, _), v in counters.refusals.items() if code // 100 == 4)
            print(f"{store:8} {n:>2} {seconds:>8.1f} {rate:>7.1f} {rate / alone:>5.2f}"
                  f" {rate / profile.capacity:>6.2f} {counters.peak_concurrent:>10}"
                  f" {refusals:>4}")  # fmt: skip


if __name__ == "__main__":
    main()
