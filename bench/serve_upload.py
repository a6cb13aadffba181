"""Create a 100,000-recipient campaign through ``mailpacer serve`` by CSV upload: seconds until
the 201 answer (validated whole and stored) and the server's peak RSS (issue 11).

The service runs API-only (``--no-worker``) so nothing is sent meanwhile; its peak RSS is read
from /proc (``VmHWM``) before it is stopped.

    .venv/bin/python bench/serve_upload.py [--rows N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "acceptance"))
from service_helpers import TEMPLATE, Served


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = folder / "mailpacer.toml"
        config.write_text('[routes.office]\nurl = "smtp://127.0.0.1:2525"\n', encoding="utf-8")
        csv = folder / "people.csv"
        with csv.open("w", encoding="utf-8") as f:
            f.write("email,name,code\n")
            for i in range(rows):
                f.write(f"worker{i}@example.com,工人{i},C{i:06d}\n")
        served = Served(folder, config, "--no-worker", "--upload-limit", "1G").start()
        assert served.process is not None
        try:
            with served.client(timeout=600) as client:
                assert client.post("/api/templates", json=TEMPLATE).status_code == 201
                before = peak_rss_mb(served.process.pid)
                started = time.perf_counter()
                with csv.open("rb") as upload:
                    answer = client.post(
                        "/api/campaigns",
                        data={"template": "hello", "route": "office", "sender": "hr@example.com"},
                        files={"recipients": ("people.csv", upload, "text/csv")},
                    )
                seconds = time.perf_counter() - started
                assert answer.status_code == 201, answer.text
                assert answer.json()["total"] == rows
            peak = peak_rss_mb(served.process.pid)
        finally:
            served.stop()
    print(
        f"{rows} recipients uploaded and stored in {seconds:.2f} s "
        f"({rows / seconds:,.0f} rows/s); server peak RSS {peak:.0f} MB "
        f"(idle {before:.0f} MB)"
    )


if __name__ == "__main__":
    main()
