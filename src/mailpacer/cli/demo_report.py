"""The demo's static report (``demo-output/index.html``): every accepted email with its QR code
inline, who it went to and its subject (linked to the email as rendered), and the failures with
the server's replies. One self-contained file; every text escaped."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from mailpacer.compose.preview import browser_html
from mailpacer.delivery.report import Failure

__all__ = ["write_index"]

_STYLE = """
body{font-family:system-ui,"Noto Sans","Noto Sans CJK SC","PingFang SC","Microsoft YaHei",
sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#111827;line-height:1.5}
h1{font-size:1.6rem;margin-bottom:.25rem}h2{margin-top:2rem;font-size:1.15rem}
p.lead{color:#4b5563;margin-top:0}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.5rem .6rem;border-bottom:1px solid #e5e7eb;vertical-align:middle}
th{font-size:.75rem;text-transform:uppercase;letter-spacing:.06em;color:#4b5563}
td.qr img{width:84px;height:84px;image-rendering:pixelated;display:block}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em;background:#f3f4f6;
padding:.05rem .3rem;border-radius:4px}.bad{color:#b91c1c;font-weight:700}a{color:#4338ca}
.muted{color:#4b5563}
"""


def _qr_uri(message: EmailMessage) -> str | None:
    """The first inline image (the QR code) as a ``data:`` URI."""
    for part in message.walk():
        if part.get("Content-ID") and part.get_content_maintype() == "image":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                encoded = base64.b64encode(data).decode("ascii")
                return f"data:{part.get_content_type()};base64,{encoded}"
    return None


def write_index(
    out: Path, messages: Sequence[tuple[str, bytes]], failures: Sequence[Failure] = ()
) -> Path:
    """One HTML page per accepted message and ``index.html`` listing them with their QR codes,
    then the failures with the server's replies."""
    pages = out / "messages"
    pages.mkdir(parents=True, exist_ok=True)
    rows = []
    for number, (recipient, data) in enumerate(messages, 1):
        parsed = message_from_bytes(data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        page = pages / f"{number:04d}.html"
        page.write_text(browser_html(parsed), encoding="utf-8")
        subject = html.escape(str(parsed.get("Subject", "")))
        to = html.escape(str(parsed.get("To", "")) or recipient)
        uri = _qr_uri(parsed)
        image = f'<img src="{uri}" alt="QR code for {to}">' if uri else "—"
        rows.append(
            f'<tr><td>{number}</td><td class="qr">{image}</td><td>{to}</td>'
            f'<td><a href="messages/{page.name}">{subject}</a></td></tr>'
        )
    failed = "".join(
        f"<tr><td>{html.escape(f.email)}</td><td class=bad>{f.code or ''}</td>"
        f"<td><code>{html.escape(f.reason)}</code></td></tr>"
        for f in failures
    )
    failures_html = (
        "<table><tr><th>to</th><th>code</th><th>the server's reply</th></tr>" + failed + "</table>"
        if failures
        else "<p class=muted>None.</p>"
    )
    index = out / "index.html"
    index.write_text(
        '<!DOCTYPE html><html lang="en"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mailpacer demo</title><style>{_STYLE}</style>"
        "<h1>mailpacer demo</h1>"
        f'<p class="lead">{len(messages)} emails accepted by the sandbox, '
        f"{len(failures)} refused. Each subject opens the email as rendered.</p>"
        f"<h2>Failed ({len(failures)})</h2>{failures_html}"
        f"<h2>Accepted ({len(messages)})</h2>"
        "<table><tr><th>#</th><th>QR code</th><th>to</th><th>subject</th></tr>"
        + "".join(rows)
        + "</table></html>\n",
        encoding="utf-8",
    )
    return index
