"""Composing speed: messages/s per core for render + QR + MIME of the worker-qr template.

Every message has its own QR code (a distinct worker id per message). Measured in one run:

- ``stdlib + segno``: the same Jinja2 templates, QR PNG by segno, ``EmailMessage`` with
  ``set_content`` / ``add_alternative`` / ``add_related`` and ``as_bytes(policy=SMTP)``;
- ``mailpacer``: :class:`Composer` as shipped (QR mask scored as the standard says);
- ``mailpacer, fixed QR mask``: ``qr_mask = 2`` in template.toml.

"Per core" is messages per second of process CPU time (the machine is shared); wall-clock rates
are printed too. Best of ``--repeat`` runs. Each path's output is parsed back and its QR decoded.

    .venv/bin/python bench/compose.py [--messages N] [--repeat R]
"""

from __future__ import annotations

import argparse
import dataclasses
import email
import email.policy
import io
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import segno
import zxingcpp
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from PIL import Image

from mailpacer.compose import Composer, iter_recipients, load_template
from mailpacer.compose.headers import date_value
from mailpacer.compose.qr import qr_png
from mailpacer.compose.template import Template, make_environment

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "worker-qr"
SENDER = "Site Operations 现场运营 <ops@example.com>"


def workloads(count: int) -> list[dict[str, str]]:
    """``count`` recipients cycling through the example workers, each with its own worker id
    (so its own QR code), and no attachment (the engine's common case)."""
    workers = [r.variables for r in iter_recipients(EXAMPLE / "workers.csv")]
    out = []
    for i in range(count):
        variables = dict(workers[i % len(workers)])
        variables["worker_id"] = f"W{i:07d}"
        variables["email"] = f"worker.{i:07d}@example.com"
        variables["attachment"] = ""
        out.append(variables)
    return out


class StdlibComposer:
    """The baseline: stdlib email package + segno, same templates and the same structure."""

    def __init__(self, template: Template) -> None:
        env = make_environment(template.directory)
        env.globals["qr"] = _segno_qr
        self.languages = {
            code: (
                env.get_template(f"{code}/subject.txt"),
                env.get_template(f"{code}/body.txt"),
                env.get_template(f"{code}/body.html"),
            )
            for code in template.languages
        }
        self.template = template

    def render(self, variables: Mapping[str, str]) -> bytes:
        language = self.template.language_for(variables.get("language", ""))
        assert language is not None
        subject, text, html = self.languages[language.code]
        images: list[tuple[str, bytes]] = []
        context = {**variables, "_images": images}
        message = EmailMessage()
        message["From"] = SENDER
        message["To"] = f"{variables['name']} <{variables['email']}>"
        message["Subject"] = subject.render(context).strip()
        message["Date"] = date_value()
        message["Message-ID"] = f"<{variables['worker_id']}@example.com>"
        message.set_content(text.render(context))
        message.add_alternative(html.render(context), subtype="html")
        html_part = message.get_payload()[1]  # type: ignore[index]
        for cid, png in images:
            html_part.add_related(png, "image", "png", cid=f"<{cid}>")
        return message.as_bytes(policy=email.policy.SMTP)


@pass_context
def _segno_qr(context: Context, value: Any, alt: str = "QR code", **_: Any) -> Markup | str:
    """The baseline's qr(): a segno PNG at the same scale (8 px/module, 4-module border)."""
    if not context.eval_ctx.autoescape:
        return str(value)
    images = context["_images"]
    buffer = io.BytesIO()
    segno.make(str(value), error="m", micro=False).save(buffer, kind="png", scale=8, border=4)
    cid = f"qr{len(images) + 1}.{id(images)}@example.com"
    images.append((cid, buffer.getvalue()))
    return Markup('<img src="cid:{}" alt="{}">').format(cid, alt)


def measure(
    render: Callable[[Mapping[str, str]], bytes], work: list[dict[str, str]], repeat: int
) -> tuple[float, float, int]:
    """Best (messages per CPU second, messages per wall second) over ``repeat`` runs, and the
    mean message size."""
    best_cpu = best_wall = 0.0
    size = 0
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        size = sum(len(render(v)) for v in work)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        best_cpu = max(best_cpu, len(work) / cpu)
        best_wall = max(best_wall, len(work) / wall)
    return best_cpu, best_wall, size // len(work)


def check_output(raw: bytes, worker_id: str) -> None:
    """The message parses, has the HTML + PNG structure and its QR decodes to the worker's URL."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    pngs = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert len(pngs) == 1, [p.get_content_type() for p in message.walk()]
    image = Image.open(io.BytesIO(pngs[0].get_payload(decode=True)))
    found = zxingcpp.read_barcode(image)
    assert found is not None and found.text == f"https://checkin.example.com/c/{worker_id}", found


def micro(repeat: int) -> list[tuple[str, float]]:
    """QR PNG encoders alone, PNGs per CPU second (best of ``repeat``)."""
    values = [f"https://checkin.example.com/c/W{i:07d}" for i in range(1000)]
    cases: list[tuple[str, Callable[[str], object]]] = [
        (
            "segno PNG",
            lambda v: segno.make(v, error="m", micro=False).save(io.BytesIO(), kind="png", scale=8),
        ),
        ("zxing-cpp + zlib PNG, mask scored", lambda v: qr_png(v)),
        ("zxing-cpp + zlib PNG, fixed mask", lambda v: qr_png(v, mask=2)),
    ]
    out = []
    for name, encode in cases:
        work = values[:200] if name.startswith("segno") else values
        best = 0.0
        for _ in range(repeat):
            cpu = time.process_time()
            for value in work:
                encode(value)
            best = max(best, len(work) / (time.process_time() - cpu))
        out.append((name, best))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    template = load_template(EXAMPLE / "templates")
    fixed = dataclasses.replace(template, qr_mask=2)
    work = workloads(args.messages)
    baseline_work = work[: max(200, args.messages // 10)]  # the baseline is slow
    paths: list[tuple[str, Callable[[Mapping[str, str]], bytes], list[dict[str, str]]]] = [
        ("stdlib EmailMessage + segno", StdlibComposer(template).render, baseline_work),
        ("mailpacer Composer", _composer(template).render, work),
        ("mailpacer Composer, qr_mask = 2", _composer(fixed).render, work),
    ]
    print(f"{args.messages:,} messages (baseline {len(baseline_work):,}), best of {args.repeat}")
    print("| path | messages/s per core (CPU) | messages/s wall | bytes/message | × baseline |")
    print("|---|---|---|---|---|")
    base = 0.0
    for name, render, items in paths:
        check_output(render(items[7]), items[7]["worker_id"])
        cpu, wall, size = measure(render, items, args.repeat)
        base = base or cpu
        print(f"| {name} | {cpu:,.0f} | {wall:,.0f} | {size:,} | {cpu / base:.1f} |")
    print()
    print("| QR PNG encoder alone | PNGs/s per core |")
    print("|---|---|")
    for name, rate in micro(args.repeat):
        print(f"| {name} | {rate:,.0f} |")


def _composer(template: Template) -> Composer:
    return Composer(template, sender=SENDER, campaign_key="bench", base_dir=EXAMPLE)


if __name__ == "__main__":
    main()
