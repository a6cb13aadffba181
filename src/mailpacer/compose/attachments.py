"""Attachment files: resolved inside their folder (never outside it), typed, read once."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  #: larger files are refused; most servers cap ~25 MB


class AttachmentError(ValueError):
    """An attachment path that is missing, not a file, too large or outside its folder."""


@dataclass(frozen=True)
class Attachment:
    """One file to attach: its name in the message, MIME type and content."""

    filename: str
    content_type: str
    data: bytes


def resolve_inside(root: Path, name: str) -> Path:
    """``name`` (relative to ``root``, or absolute) as a resolved path to an existing regular
    file inside ``root``; symlinks are followed before the check, so they cannot escape."""
    name = name.strip()
    if not name:
        raise AttachmentError("empty attachment path")
    if "\0" in name:
        raise AttachmentError(f"{name!r}: NUL in the path")
    base = root.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise AttachmentError(f"{name!r} is outside the campaign folder {str(base)!r}; refused")
    if not path.exists():
        raise AttachmentError(f"{name!r}: file not found (looked for {str(path)!r})")
    if not path.is_file():
        raise AttachmentError(f"{name!r} is not a regular file")
    size = path.stat().st_size
    if size > MAX_ATTACHMENT_BYTES:
        raise AttachmentError(
            f"{name!r} is {size / 1e6:.1f} MB; the limit is {MAX_ATTACHMENT_BYTES / 1e6:.0f} MB"
        )
    return path


def load_attachment(path: Path, filename: str | None = None) -> Attachment:
    """Read a resolved attachment file; the MIME type is guessed from its name."""
    shown = filename or path.name
    content_type = mimetypes.guess_type(shown)[0] or "application/octet-stream"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AttachmentError(f"{str(path)!r}: cannot read ({exc.strerror})") from None
    return Attachment(shown, content_type, data)
