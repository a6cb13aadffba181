"""Validate a 1,000,000-row recipients CSV: wall time and peak RSS (issue 4).

Targets: under 60 s and under 300 MB. The CSV (worker-qr columns, Chinese and English rows, a few
duplicates and bad addresses) is generated into a temporary folder; validation runs in a child
process so that its peak RSS is measured alone (``RUSAGE_CHILDREN``).

    .venv/bin/python bench/validate_large.py [--rows N]
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "worker-qr" / "templates"
CHILD = """
import sys, time
from pathlib import Path
from mailpacer.compose import validate_campaign
started = time.perf_counter()
check = validate_campaign(Path(sys.argv[1]), Path(sys.argv[2]), sender="Ops <ops@example.com>")
print(f"{time.perf_counter() - started:.2f} {check.rows} {check.valid} {len(check.problems)} "
      f"{len(check.warnings)} {len(check.skip_rows)}")
"""


def generate(path: Path, rows: int) -> None:
    """Write ``rows`` recipients: every 10,000th a duplicate, every 25,000th a bad address."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            ["email", "name", "language", "worker_id", "site", "shift_date", "attachment"]
        )
        for i in range(1, rows + 1):
            n = i - 1 if i % 10_000 == 0 else i
            email = f"worker.{n:07d}@site{n % 50}.example.com"
            if i % 25_000 == 0:
                email = f"worker.{n:07d}@@example.com"
            if i % 2:
                writer.writerow(
                    [email, f"张伟{i}", "zh", f"W{i:07d}", "北门仓库", "2026-06-02", ""]
                )
            else:
                writer.writerow(
                    [
                        email,
                        f"Sarah Smith {i}",
                        "en",
                        f"W{i:07d}",
                        "East Sorting Centre",
                        "2026-06-04",
                        "",
                    ]
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipients.csv"
        started = time.perf_counter()
        generate(path, args.rows)
        size = path.stat().st_size
        took = time.perf_counter() - started
        print(f"generated {args.rows:,} rows ({size / 1e6:.0f} MB) in {took:.1f} s")
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), str(TEMPLATE)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    seconds, rows, valid, problems, warnings, skipped = out
    rate = int(rows) / float(seconds)
    print(
        f"validate: {int(rows):,} rows in {float(seconds):.1f} s ({rate:,.0f} rows/s; "
        f"process {wall:.1f} s incl. start-up), peak RSS {peak_mb:.0f} MB; "
        f"valid {int(valid):,}, problems {problems}, warnings {warnings}, skipped {skipped}"
    )
    ok = float(seconds) < 60 and peak_mb < 300
    print("targets (< 60 s, < 300 MB):", "met" if ok else "NOT met")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
