"""Helpers shared by the compose unit tests: template folders, CSV files, parsing messages."""

from __future__ import annotations

import email
import email.policy
import io
from email.message import EmailMessage
from pathlib import Path

import zxingcpp
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "worker-qr"
EXAMPLE_TEMPLATE = EXAMPLE / "templates"
SENDER = "Site Operations 现场运营 <ops@example.com>"

SIMPLE = {
    "en/subject.txt": "Hello {{ name }}\n",
    "en/body.txt": "Hi {{ name }}, your code is {{ code }}.\n",
    "en/body.html": "<p>Hi {{ name }}</p>{{ qr(code) }}\n",
}


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create ``files`` (relative path -> content) under ``root``; returns ``root``."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def write_csv(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write a CSV file (``text`` uses ``\\n``; written as given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def parse(message: bytes) -> EmailMessage:
    """Parse a message with the standard library's modern policy."""
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def decode_qr(png: bytes) -> str | None:
    """Read a QR code back from PNG bytes with zxing-cpp (through PIL)."""
    image = Image.open(io.BytesIO(png))
    image.load()
    found = zxingcpp.read_barcode(image)
    return found.text if found is not None else None
