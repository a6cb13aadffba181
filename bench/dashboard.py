"""The dashboard's page weight (bytes of HTML + CSS + JS, as served: no compression) and time to
first render (first contentful paint, ms, from Chromium's performance timing), for the campaigns
list, a campaign page and the new-campaign page (issue 12). Headless Debian Chromium through
Playwright, against a real ``mailpacer serve`` on 127.0.0.1 and the sandbox; the campaign page
is measured after a 200-worker campaign (QR codes, Chinese and English) finished on a slowed
``exchange-like`` sandbox (3 connections, 20 messages per connection: two limits to learn).

    .venv/bin/python bench/dashboard.py [--loads N] [--screenshot docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "acceptance"))
from dashboard_helpers import CHROMIUM, add_template, upload, workers
from playwright.sync_api import sync_playwright
from service_helpers import Served, wait_for, write_config

from mailpacer.sandbox import Sandbox, get_profile

KINDS = ("document", "stylesheet", "script")
PAINT = """() => {
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  const nav = performance.getEntriesByType("navigation")[0];
  return {fcp: paint ? paint.startTime : null, dcl: nav.domContentLoadedEventEnd};
}"""


def measure(browser: Any, url: str, loads: int) -> dict[str, float]:
    """Median first contentful paint and DOMContentLoaded (ms) over ``loads`` fresh loads, and
    the bytes of the page's own HTML, CSS and JS (the first load)."""
    fcps, dcls, weight = [], [], 0
    for number in range(loads):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        sizes: list[int] = []
        if number == 0:

            def count(response: Any, page: Any = page, sizes: list[int] = sizes) -> None:
                if response.frame == page.main_frame and response.request.resource_type in KINDS:
                    sizes.append(len(response.body()))

            page.on("response", count)
        page.goto(url, wait_until="load")
        page.wait_for_timeout(300)
        timing = page.evaluate(PAINT)
        fcps.append(timing["fcp"])
        dcls.append(timing["dcl"])
        weight = weight or sum(sizes)
        context.close()
    return {"bytes": weight, "fcp": statistics.median(fcps), "dcl": statistics.median(dcls)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--screenshot", type=Path, help="save the campaign page (1280×800) here")
    args = parser.parse_args()
    profile = get_profile("exchange-like")
    import dataclasses

    slowed = dataclasses.replace(profile, data_latency=0.12)
    with tempfile.TemporaryDirectory() as tmp, Sandbox(slowed) as sb:
        folder = Path(tmp)
        served = Served(folder, write_config(folder, sb), token=None).start()
        try:
            with served.client() as client:
                add_template(client)
                made = upload(client, workers(200), name="June check-in 六月入职签到").json()
                done = wait_for(client, made["id"], lambda c: c["state"] == "done", timeout=120)
            pages = {
                "campaigns list (/)": served.url + "/",
                "campaign page": f"{served.url}/campaigns/{made['id']}",
                "new campaign": served.url + "/campaigns/new",
            }
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                print(f"campaign: {done['total']} messages, {done['limits_text']}")
                print(
                    f"{'page':<22} {'HTML+CSS+JS bytes':>18} {'first paint ms':>15} {'DCL ms':>8}"
                )
                for name, url in pages.items():
                    m = measure(browser, url, args.loads)
                    print(f"{name:<22} {m['bytes']:>18,} {m['fcp']:>15.0f} {m['dcl']:>8.0f}")
                if args.screenshot:
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    page = context.new_page()
                    page.goto(pages["campaign page"], wait_until="load")
                    page.wait_for_timeout(1000)
                    page.screenshot(path=args.screenshot)
                    print(f"screenshot: {args.screenshot}")
                browser.close()
        finally:
            served.stop()


if __name__ == "__main__":
    main()
