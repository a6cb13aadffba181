"""Scale-out: N processes on one campaign and one database, sharing the route.

``--kind send`` (the default): N `mailpacer send` processes started at once. For each store
(SQLite file, PostgreSQL when reachable) and each N, a fresh database and a fresh sandbox;
reports messages/s together, its ratio to one process alone and to the profile's capacity, the
most connections the server saw at once and the 4xx replies it sent.

    .venv/bin/python bench/scale.py [--rows 1000] [--profile strict] [--max-connections 4]
                                    [--workers 1,2,3] [--pg postgresql://postgres@127.0.0.1/test]

``--kind worker``: the campaign is stored first (as `serve` would), then N `mailpacer worker`
processes run it on a database of its own on the PostgreSQL server; besides msg/s it reports
the database's time per message (``pg_stat_database.active_time``: time spent executing
statements, that database only) and the CPU its server processes used per message (each
backend of that database sampled from /proc while it lives).

    .venv/bin/python bench/scale.py --kind worker --rows 100000 --profile unlimited --workers 1,2,4
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

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


def pg_database(base: str) -> tuple[str, str] | None:
    """A fresh database on the PostgreSQL server and its URL, or None when unreachable."""
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return None
    name = f"mailpacer_bench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, urllib.parse.urlsplit(base)._replace(path=f"/{name}").geturl()


def drop_database(base: str, name: str) -> None:
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class BackendCpu:
    """CPU seconds used by the PostgreSQL server processes serving one database."""

    def __init__(self, base: str, database: str) -> None:
        self.admin = psycopg.connect(base, autocommit=True)
        self.database = database
        self.seen: dict[int, float] = {}
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        pids = self.admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
        ).fetchall()
        for (pid,) in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used = (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
            self.seen[pid] = max(self.seen.get(pid, 0.0), used)

    def active_seconds(self) -> float:
        row = self.admin.execute(
            "SELECT active_time FROM pg_stat_database WHERE datname = %s", (self.database,)
        ).fetchone()
        return float(row[0] or 0.0) / 1000 if row else 0.0

    def close(self) -> None:
        self.admin.close()


def run_workers(n: int, db: str, sb: Sandbox, folder: Path, cpu: BackendCpu) -> float:
    """Store the campaign, start ``n`` workers, wait until it is done; seconds from the
    workers' start to done. Samples the database's backends meanwhile."""
    from mailpacer.config.campaign import CampaignSettings
    from mailpacer.core.route import Route
    from mailpacer.core.states import CampaignState
    from mailpacer.delivery import runner
    from mailpacer.store import open_store

    settings = CampaignSettings(
        recipients=(folder / "workers.csv").resolve(),
        template=(folder / "templates").resolve(),
        route=Route(host=sb.host, port=sb.port, timeout=10.0),
        sender="HR <hr@example.com>",
    )
    store = open_store(db)
    cid = runner.prepare(store, settings, runner.check(settings)).campaign.id
    args = [sys.executable, "-m", "mailpacer", "worker", "--db", db, "--poll", "0.2"]
    started = time.monotonic()
    procs = [
        subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        deadline = started + 1800
        while store.get_campaign(cid).state is not CampaignState.DONE:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"campaign {cid} not done (a worker exited, or 30 min passed)")
            cpu.sample()
            time.sleep(0.5)
        seconds = time.monotonic() - started
        cpu.sample()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        store.close()
    return seconds


def main_workers(opts: argparse.Namespace, profile: Any) -> None:
    print(
        f"{opts.rows} messages, profile {profile.name}, `mailpacer worker` processes on PostgreSQL"
    )
    print("msg/s: first to last delivery at the sandbox; db ms/msg: the database's statement time;"
          " pg cpu ms/msg: its server processes' CPU")  # fmt: skip
    print(f"{'N':>2} {'seconds':>8} {'msg/s':>7} {'vs 1':>5} {'of cap':>6} {'db ms/msg':>9}"
          f" {'pg cpu ms/msg':>13} {'peak conns':>10} {'4xx':>4} {'sent':>7}")  # fmt: skip
    alone = None
    for n in [int(x) for x in opts.workers.split(",")]:
        made = pg_database(opts.pg)
        if made is None:
            raise SystemExit("postgres: not reachable")
        name, db = made
        cpu = BackendCpu(opts.pg, name)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder = campaign(Path(tmp) / "c", opts.rows)
                with Sandbox(profile, keep_data=False) as sb:
                    before = cpu.active_seconds()
                    seconds = run_workers(n, db, sb, folder, cpu)
                    active = cpu.active_seconds() - before
                    counters = sb.counters
                    times = sorted(m.time for m in sb.messages)
        finally:
            cpu.close()
            drop_database(opts.pg, name)
        sent = len(times)
        rate = (sent - 1) / (times[-1] - times[0])
        alone = alone or rate
        refusals = sum(v for (code, _), v in counters.refusals.items() if code // 100 == 4)
        share = f"{rate / profile.capacity:>6.2f}" if profile.capacity != math.inf else "     -"
        print(f"{n:>2} {seconds:>8.1f} {rate:>7.1f} {rate / alone:>5.2f} {share}"
              f" {1000 * active / sent:>9.3f} {1000 * sum(cpu.seen.values()) / sent:>13.3f}"
              f" {counters.peak_concurrent:>10} {refusals:>4} {sent:>7}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--profile", default="strict")
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--kind", choices=("send", "worker"), default="send")
    opts = parser.parse_args()
    profile = get_profile(opts.profile)
    if opts.max_connections is not None:
        profile = dataclasses.replace(profile, max_connections=opts.max_connections)
    if opts.kind == "worker":
        main_workers(opts, profile)
        return
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
