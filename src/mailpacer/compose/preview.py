"""``mailpacer preview``: render one recipient's message to an ``.eml`` file (open it in a mail
client) and an ``.html`` file (open it in a browser; inline QR codes become ``data:`` URIs)."""

from __future__ import annotations

import base64
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import click

from mailpacer.compose.composer import Composer
from mailpacer.compose.recipients import Recipient, RecipientsFile, make_recipient
from mailpacer.compose.template import load_template
from mailpacer.core.errors import InputError, Problem

DEFAULT_SENDER = "mailpacer preview <preview@example.com>"


@dataclass(frozen=True)
class Preview:
    """The files written for one row and what they show."""

    row: int
    email: str
    subject: str
    eml: Path
    html: Path
    size: int


def preview(
    recipients_csv: Path,
    template_dir: Path,
    *,
    row: int | None = None,
    out_dir: Path = Path("preview"),
    sender: str = DEFAULT_SENDER,
) -> Preview:
    """Render data row ``row`` (default: the first) and write ``row-N.eml`` and ``row-N.html``."""
    template = load_template(template_dir)
    recipients_csv = Path(recipients_csv)
    composer = Composer(
        template, sender=sender, campaign_key="preview", base_dir=recipients_csv.resolve().parent
    )
    recipient = _find_row(recipients_csv, row)
    try:
        message = composer.render(recipient.variables)
    except InputError as exc:
        raise InputError(
            [Problem(p.message, file=str(recipients_csv), row=recipient.row) for p in exc.problems]
        ) from None
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    out_dir.mkdir(parents=True, exist_ok=True)
    eml = out_dir / f"row-{recipient.row}.eml"
    html = out_dir / f"row-{recipient.row}.html"
    eml.write_bytes(message)
    html.write_text(browser_html(parsed), encoding="utf-8")
    return Preview(recipient.row, recipient.email, str(parsed["Subject"]), eml, html, len(message))


def _find_row(recipients_csv: Path, row: int | None) -> Recipient:
    """Data row ``row`` (default: the first); other rows' problems do not matter here."""
    source = RecipientsFile(recipients_csv)
    for number, cells in source.rows():
        if row is None or number == row:
            source.close()
            if len(cells) != len(source.header):
                raise InputError(source.ragged(number, cells))
            return make_recipient(source.header, number, cells)
    wanted = f"row {row}" if row is not None else "any recipient"
    raise InputError(Problem(f"no {wanted} in the file", file=str(recipients_csv)))


def browser_html(message: EmailMessage) -> str:
    """The HTML part with ``cid:`` images inlined as ``data:`` URIs (or the text part in
    ``<pre>`` when the message has no HTML)."""
    body = message.get_body(("html", "plain"))
    if body is None:
        return "<p>(empty message)</p>"
    content = str(body.get_content())
    if body.get_content_type() == "text/plain":
        escaped = content.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f'<!DOCTYPE html><meta charset="utf-8"><pre>{escaped}</pre>\n'
    for part in message.walk():
        cid = part.get("Content-ID")
        if cid and part.get_content_maintype() == "image":
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)
            uri = f"data:{part.get_content_type()};base64,{base64.b64encode(data).decode('ascii')}"
            content = content.replace(f"cid:{cid.strip('<>')}", uri)
    return content


@click.command("preview")
@click.argument("recipients", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--template", "template_dir", required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--row", type=click.IntRange(min=1), help="Data row to render (default: the first).")
@click.option(
    "--out",
    "out_dir",
    default=Path("preview"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for row-N.eml and row-N.html.",
)
@click.option("--from", "sender", default=DEFAULT_SENDER, show_default=True)
def preview_command(
    recipients: Path, template_dir: Path, row: int | None, out_dir: Path, sender: str
) -> None:
    """Render one recipient's message to .eml and .html files, sending nothing."""
    result = preview(recipients, template_dir, row=row, out_dir=out_dir, sender=sender)
    click.echo(
        f"row {result.row}: {result.email} — {result.subject} ({result.size:,} bytes)", err=True
    )
    click.echo(str(result.eml))
    click.echo(str(result.html))
