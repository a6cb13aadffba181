"""MIME assembly by hand, fast: the campaign's invariant pieces are built once, each message only
joins its own headers, encoded bodies and QR images in between.

Structure (parts that a message does not need are left out)::

    multipart/mixed                     only with attachments
      multipart/alternative             only with an HTML body
        text/plain                      quoted-printable or base64, whichever is shorter
        multipart/related               only with inline images
          text/html
          image/png  (Content-ID)       one per qr() value
      application/pdf ...               attachments (base64)

Boundaries start with ``=_``, which can never occur in quoted-printable or base64 text, so they
need no collision check; every line ends with CRLF and stays far below 998 octets.
"""

from __future__ import annotations

import binascii
from urllib.parse import quote

from mailpacer.compose.attachments import Attachment
from mailpacer.compose.headers import encoded_words, refuse_line_breaks
from mailpacer.core.errors import InputError, Problem

_HIGH_BYTES = bytes(range(128, 256))
_CT_TEXT = b'Content-Type: text/plain; charset="utf-8"\r\n'
_CT_HTML = b'Content-Type: text/html; charset="utf-8"\r\n'
_CTE_QP = b"Content-Transfer-Encoding: quoted-printable\r\n"
_CTE_B64 = b"Content-Transfer-Encoding: base64\r\n"


def base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, each ending with CRLF."""
    encoded = binascii.b2a_base64(data, newline=False)
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


def text_part(content_type: bytes, text: str) -> bytes:
    """A text part (headers + body) in UTF-8, quoted-printable for mostly-ASCII text (readable,
    and spam filters dislike base64-wrapped ASCII), base64 for mostly non-ASCII text (Chinese)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    high = 0 if data.isascii() else len(data) - len(data.translate(None, _HIGH_BYTES))
    if high * 6 > len(data):  # quoted-printable triples each such byte; base64 costs 4/3 overall
        return content_type + _CTE_B64 + b"\r\n" + base64_lines(data)
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    return content_type + _CTE_QP + b"\r\n" + encoded.replace(b"\n", b"\r\n")


def image_part(cid: str, png: bytes, index: int) -> bytes:
    """An inline PNG referenced from the HTML as ``cid:<cid>``."""
    return (
        b"Content-Type: image/png\r\n"
        + _CTE_B64
        + b"Content-ID: <"
        + cid.encode("ascii")
        + b">\r\n"
        b'Content-Disposition: inline; filename="qr'
        + str(index).encode("ascii")
        + b'.png"\r\n\r\n'
        + base64_lines(png)
    )


def attachment_part(attachment: Attachment) -> bytes:
    """An attachment part; non-ASCII file names as RFC 2231 ``filename*`` (and an encoded-word
    ``name`` for old clients)."""
    name = refuse_line_breaks("attachment file name", attachment.filename)
    if len(name.encode("utf-8")) > 255:
        raise InputError(Problem(f"attachment file name longer than 255 bytes: {name[:40]!r}…"))
    if name.isascii() and name.isprintable():
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        type_param, disposition = f"name={quoted}", f"filename={quoted}"
    else:
        type_param = 'name="' + " ".join(encoded_words(name)) + '"'
        disposition = "filename*=utf-8''" + quote(name, safe="")
    head = (
        f"Content-Type: {attachment.content_type};\r\n {type_param}\r\n"
        f"Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment;\r\n {disposition}\r\n\r\n"
    )
    return head.encode("ascii") + base64_lines(attachment.data)


def multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    """A multipart entity (its Content-Type header, a blank line, the delimited parts). The
    CRLF before each delimiter belongs to the delimiter, so parts keep their last line break."""
    delimiter = b"\r\n--" + boundary.encode("ascii") + b"\r\n"
    out = [f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n'.encode("ascii")]
    for part in parts:
        out.append(delimiter)
        out.append(part)
    out.append(b"\r\n--" + boundary.encode("ascii") + b"--\r\n")
    return b"".join(out)


class Assembler:
    """Builds message bodies for one campaign; the boundaries and campaign-wide attachment parts
    are made once here."""

    __slots__ = ("_boundaries", "_shared_attachments")

    def __init__(self, boundary_seed: str, shared_attachments: list[Attachment]) -> None:
        self._boundaries = tuple(f"=_mp{kind}_{boundary_seed}" for kind in ("mix", "alt", "rel"))
        self._shared_attachments = [attachment_part(a) for a in shared_attachments]

    def body(
        self,
        text: str,
        html: str | None,
        images: list[tuple[str, bytes]],
        attachments: list[Attachment],
    ) -> bytes:
        """Everything after the message's own headers: the top Content-Type and the entity."""
        mixed, alternative, related = self._boundaries
        entity = text_part(_CT_TEXT, text)
        if html is not None:
            html_entity = text_part(_CT_HTML, html)
            if images:
                inline = [image_part(cid, png, i) for i, (cid, png) in enumerate(images, 1)]
                html_entity = multipart("related", related, [html_entity, *inline])
            entity = multipart("alternative", alternative, [entity, html_entity])
        extra = self._shared_attachments
        if attachments:
            extra = extra + [attachment_part(a) for a in attachments]
        if extra:
            entity = multipart("mixed", mixed, [entity, *extra])
        return entity
