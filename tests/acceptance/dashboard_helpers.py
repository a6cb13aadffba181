"""Helpers for the dashboard tests: a real ``mailpacer serve`` with the worker-qr template (QR
codes, Chinese and English), recipients as CSV bytes, and Debian's Chromium for Playwright."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "worker-qr"
CHROMIUM = "/usr/bin/chromium"
XSS_NAME = "<img src=x onerror=alert(1)>"
COLUMNS = ["email", "name", "language", "worker_id", "site", "shift_date"]


def template_zip() -> bytes:
    """examples/worker-qr/templates as a zip."""
    folder = EXAMPLE / "templates"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def add_template(client: httpx.Client, name: str = "worker-qr") -> None:
    """Upload the worker-qr template as ``name``."""
    files = {"archive": ("worker-qr.zip", template_zip(), "application/zip")}
    response = client.post("/api/templates", data={"name": name}, files=files)
    assert response.status_code == 201, response.text


def workers(count: int, *, start: int = 0) -> list[dict[str, str]]:
    """``count`` rows of examples/worker-qr/workers.csv (without the attachment column)."""
    with (EXAMPLE / "workers.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return [{k: row[k] for k in COLUMNS} for row in rows[start : start + count]]


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    """Rows as a UTF-8 CSV file."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def upload(client: httpx.Client, rows: list[dict[str, str]], **fields: Any) -> httpx.Response:
    """Create a campaign by CSV upload (multipart), as the new-campaign page does."""
    form = {"template": "worker-qr", "route": "sandbox", "sender": "HR <hr@example.com>"}
    form.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()})
    files = {"recipients": ("workers.csv", csv_bytes(rows), "text/csv")}
    return client.post("/api/campaigns", data=form, files=files)
