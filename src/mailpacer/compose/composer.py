"""The composer: one recipient's variables in, the complete message bytes out (DESIGN §2).

The engine calls :meth:`Composer.render` at send time with the stored variables (plain strings),
so rendering is deterministic (same input, same bytes, except ``Date``) and fast; the
Message-ID depends only on the campaign key and the recipient's address, so a resend after an
ambiguous drop carries the same one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path

import jinja2

from mailpacer.compose.attachments import Attachment, load_attachment
from mailpacer.compose.headers import (
    address_header,
    date_value,
    header_address,
    refuse_line_breaks,
    unstructured,
)
from mailpacer.compose.helpers import CONTEXT_KEY, MessageParts
from mailpacer.compose.mime import Assembler
from mailpacer.compose.template import Template, make_environment
from mailpacer.compose.unsubscribe import OneClick
from mailpacer.core.errors import InputError, Problem


class Composer:
    """Renders complete messages of one campaign (see the module docstring).

    ``list_unsubscribe`` (default: ``template.toml``'s) is a Jinja2 string rendered per
    recipient, e.g. ``mailto:leave@example.com?subject={{ email }}``; items are comma-separated
    and get ``<>`` when they lack them. ``one_click`` adds the RFC 8058 one-click link and
    ``List-Unsubscribe-Post`` (the template's ``mailto:`` items follow the link).
    """

    def __init__(
        self,
        template: Template,
        *,
        sender: str,
        campaign_key: str,
        base_dir: Path,
        list_unsubscribe: str | None = None,
        one_click: OneClick | None = None,
    ) -> None:
        name, address = parseaddr(refuse_line_breaks("sender", sender))
        if "@" not in address:
            raise InputError(
                Problem(f"sender {sender!r} is not an address such as 'Team <team@example.com>'")
            )
        self.template = template
        self.one_click = one_click
        self.campaign_key = campaign_key
        self.base_dir = Path(base_dir)
        self._from = address_header("From", name, address)
        self._domain = header_address(address).rpartition("@")[2]
        self._key = campaign_key.encode("utf-8") + b"\0"
        unsubscribe = list_unsubscribe or template.list_unsubscribe
        self._unsubscribe = (
            make_environment(template.directory).from_string(unsubscribe) if unsubscribe else None
        )
        shared = [load_attachment(path) for path in template.attachments]
        seed = hashlib.blake2b(self._key, digest_size=8).hexdigest()
        self._assembler = Assembler(seed, shared)
        self._attachment_cache: dict[Path, Attachment] = {}
        self._date: tuple[int, bytes] = (-1, b"")

    def __repr__(self) -> str:
        sender = self._from.decode("ascii").strip()[6:]
        return f"<Composer {self.template!r} from={sender!r} campaign={self.campaign_key!r}>"

    def _token(self, email: str) -> str:
        """A stable hash of (campaign, recipient), the local part of Message-ID and Content-IDs."""
        return hashlib.blake2b(
            self._key + email.strip().lower().encode("utf-8"), digest_size=12
        ).hexdigest()

    def message_id(self, email: str) -> str:
        """The deterministic Message-ID of ``email``'s message in this campaign, with ``<>``."""
        return f"<{self._token(email)}@{self._domain}>"

    def render(self, variables: Mapping[str, str]) -> bytes:
        """The complete message (headers and body, CRLF line endings) for one recipient.

        Raises :class:`InputError` when the row cannot be rendered: a missing variable, an
        unknown language without fallback, a missing attachment, CR/LF in a header value.
        """
        email = variables.get("email", "")
        if not email.strip():
            raise InputError(Problem("the recipient has no email address"))
        language_value = variables.get("language", "")
        language = self.template.language_for(language_value)
        if language is None:
            raise InputError(
                Problem(f"unknown language {language_value!r} and no fallback_language")
            )
        token = self._token(email)
        parts = MessageParts(
            token,
            self._domain,
            self.base_dir,
            qr_mask=self.template.qr_mask,
            attachment_cache=self._attachment_cache,
        )
        context = dict(variables)
        context[CONTEXT_KEY] = parts  # type: ignore[assignment]  # the helpers' collector
        try:
            subject = language.subject.render(context).rstrip("\r\n")  # the file's last newline
            text = language.text.render(context)
            html = language.html.render(context) if language.html is not None else None
            unsubscribe = (
                self._unsubscribe.render(context) if self._unsubscribe is not None else None
            )
        except jinja2.UndefinedError as exc:
            raise InputError(Problem(f"{language.code}: missing variable: {exc.message}")) from None
        except jinja2.TemplateError as exc:
            raise InputError(Problem(f"{language.code}: template error: {exc}")) from None
        column = variables.get(self.template.attachment_column, "")
        if column.strip():
            parts.add_attachment(column)
        head = [
            self._from,
            address_header("To", variables.get("name", ""), email),
            unstructured("Subject", subject),
            self._date_line(),
            f"Message-ID: <{token}@{self._domain}>\r\n".encode("ascii"),
        ]
        items = _unsubscribe_items(unsubscribe) if unsubscribe is not None else []
        if self.one_click is not None:  # RFC 8058: our link first, the template's mailto: after
            head.append(self.one_click.headers(email, [i for i in items if i[1:8] == "mailto:"]))
        elif items:
            head.append(("List-Unsubscribe: " + ",\r\n ".join(items) + "\r\n").encode("ascii"))
        head.append(b"MIME-Version: 1.0\r\n")
        head.append(self._assembler.body(text, html, parts.images, parts.attachments))
        return b"".join(head)

    def _date_line(self) -> bytes:
        """``Date:`` now, formatted once per second."""
        now = time.time()
        second = int(now)
        if self._date[0] != second:
            self._date = (second, f"Date: {date_value(now)}\r\n".encode("ascii"))
        return self._date[1]


def _unsubscribe_items(value: str) -> list[str]:
    """``List-Unsubscribe`` items from ``mailto:`` / ``https:`` URLs (``<>`` added if absent)."""
    refuse_line_breaks("List-Unsubscribe", value)
    items = [item.strip() for item in value.split(",") if item.strip()]
    wrapped = [item if item.startswith("<") else f"<{item}>" for item in items]
    if not wrapped or not all(w.isascii() and len(w) < 900 for w in wrapped):
        raise InputError(
            Problem(f"List-Unsubscribe: ASCII mailto:/https: URLs under 900 chars, not {value!r}")
        )
    return wrapped
