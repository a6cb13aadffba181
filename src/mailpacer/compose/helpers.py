"""Template helpers ``qr()`` and ``attach()`` and what they collect while a message renders.

The composer passes a fresh :class:`MessageParts` to each render under :data:`CONTEXT_KEY`;
the helpers add inline images and attachments to it and return what goes in the text:
``qr()`` an ``<img src="cid:...">`` tag in HTML (its value in plain text), ``attach()`` nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from mailpacer.compose.attachments import (
    Attachment,
    AttachmentError,
    load_attachment,
    resolve_inside,
)
from mailpacer.compose.qr import qr_png
from mailpacer.core.errors import InputError, Problem

CONTEXT_KEY = "_mailpacer"
_CACHE_FILE_BYTES = 1 << 20  #: files up to 1 MiB are kept (64 at most): rows share a few files


class MessageParts:
    """Inline images and attachments of one message being rendered."""

    __slots__ = (
        "_attachment_cache",
        "_qr_cache",
        "attachments",
        "base_dir",
        "domain",
        "images",
        "qr_mask",
        "token",
    )

    def __init__(
        self,
        token: str,
        domain: str,
        base_dir: Path,
        *,
        qr_mask: int | None = None,
        attachment_cache: dict[Path, Attachment] | None = None,
    ) -> None:
        self.token = token
        self.domain = domain
        self.base_dir = base_dir
        self.qr_mask = qr_mask
        self.images: list[tuple[str, bytes]] = []  #: (Content-ID without <>, PNG bytes)
        self.attachments: list[Attachment] = []
        self._qr_cache: dict[tuple[str, int, str], tuple[str, int]] = {}
        self._attachment_cache = attachment_cache if attachment_cache is not None else {}

    def add_qr(self, value: str, *, scale: int, ec: str) -> tuple[str, int]:
        """Render a QR code (once per value in a message); returns (Content-ID, pixels)."""
        key = (value, scale, ec)
        found = self._qr_cache.get(key)
        if found is None:
            try:
                image = qr_png(value, scale=scale, ec=ec, mask=self.qr_mask)
            except ValueError as exc:
                raise InputError(Problem(f"qr({value[:40]!r}): {exc}")) from None
            cid = f"qr{len(self.images) + 1}.{self.token}@{self.domain}"
            self.images.append((cid, image.png))
            found = self._qr_cache[key] = (cid, image.modules)
        return found

    def add_attachment(self, name: str, filename: str | None = None) -> None:
        """Attach a file from the campaign folder (checked to exist and to stay inside it)."""
        try:
            path = resolve_inside(self.base_dir, name)
            attachment = self._attachment_cache.get(path)
            if attachment is None:
                attachment = load_attachment(path)
                if len(self._attachment_cache) < 64 and len(attachment.data) <= _CACHE_FILE_BYTES:
                    self._attachment_cache[path] = attachment
        except AttachmentError as exc:
            raise InputError(Problem(f"attachment {exc}")) from None
        if filename:
            attachment = Attachment(filename, attachment.content_type, attachment.data)
        self.attachments.append(attachment)


def _parts(context: Context) -> MessageParts:
    parts = context.get(CONTEXT_KEY)
    if not isinstance(parts, MessageParts):
        raise InputError(Problem("qr() and attach() work only while mailpacer composes a message"))
    return parts


@pass_context
def qr(
    context: Context,
    value: Any,
    size: int | None = None,
    ec: str = "M",
    alt: str = "QR code",
    scale: int = 8,
) -> Markup | str:
    """``{{ qr(check_in_url) }}``: an inline PNG QR code of ``value``. ``size`` is the displayed
    width in CSS pixels (default 4 per module: the PNG's 8 per module stay sharp on HiDPI
    screens); ``ec`` the error-correction level L/M/Q/H. In a text body: the value itself."""
    text = str(value)
    if not context.eval_ctx.autoescape:
        return text
    cid, modules = _parts(context).add_qr(text, scale=int(scale), ec=str(ec))
    shown = int(size) if size is not None else modules * 4
    return Markup(  # noqa: S704 -- cid is ours (hex@domain), sizes are ints, alt is escaped
        f'<img src="cid:{cid}" width="{shown}" height="{shown}" alt="{escape(alt)}" '
        'style="display:block">'
    )


@pass_context
def attach(context: Context, path: Any, name: str | None = None) -> str:
    """``{{ attach("files/" ~ id ~ ".pdf") }}``: attach a file from the campaign folder (the
    recipients CSV's folder) to this message; renders as nothing."""
    _parts(context).add_attachment(str(path), name)
    return ""


HELPERS: dict[str, Callable[..., Any]] = {"qr": qr, "attach": attach}
