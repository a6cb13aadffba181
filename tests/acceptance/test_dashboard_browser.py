"""The dashboard in a real browser: Playwright drives Debian's Chromium (``/usr/bin/chromium``,
headless, ``--no-sandbox``) against a real ``mailpacer serve`` on 127.0.0.1 and the sandbox.
Screenshots go to ``test-output/dashboard/`` (ignored by git)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import CHROMIUM, ROOT, XSS_NAME, add_template, csv_bytes, upload, workers
from service_helpers import TOKEN, Served, wait_for, write_config

pytestmark = [pytest.mark.slow, pytest.mark.browser]
playwright_api = pytest.importorskip("playwright.sync_api")  # the test extra installs it
playwright_api.expect.set_options(timeout=30_000)  # the longest any expectation waits

SHOTS = ROOT / "test-output" / "dashboard"
WAIT_MS = 30_000  #: the longest any action waits


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module (``make test`` installs it with apt)."""
    assert Path(CHROMIUM).exists(), "no /usr/bin/chromium: make test installs it (as root)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture
def served(tmp_path: Path, sandbox: Any) -> Iterator[tuple[Served, Any]]:
    """``serve`` with a token on a slowed strict sandbox (2 connections), worker-qr uploaded."""
    sb = sandbox("strict", data_latency=0.04)
    server = Served(tmp_path, write_config(tmp_path, sb)).start()
    with server.client() as client:
        add_template(client)
    yield server, sb
    server.stop()


@pytest.fixture
def browse(chromium: Any) -> Iterator[Any]:
    """``browse()``: a new 1280×800 context and its page, with every dialog recorded (and
    dismissed) in ``page.dialogs``; all are closed at teardown, whatever happened."""
    contexts: list[Any] = []

    def open_page() -> tuple[Any, Any, list[str]]:
        context = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
        contexts.append(context)
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        dialogs: list[str] = []

        def on_dialog(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return context, page, dialogs

    yield open_page
    for context in contexts:
        context.close()


def _login(page: Any, url: str) -> None:
    page.goto(url + "/")
    assert "/login" in page.url
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")


def test_upload_fix_start_pause_resume_to_100_percent(
    browse: Any, served: tuple[Served, Any], tmp_path: Path
) -> None:
    """Log in once; upload a CSV with a bad address: the problem is shown by row and nothing
    is created; upload the fixed list; start; pause (the sandbox then receives nothing) and
    resume by clicking; the page reaches 100 % live. The recipient named like an HTML tag shows
    as text and no dialog fires; the preview shows the QR code in a sandboxed iframe."""
    server, sb = served
    expect = playwright_api.expect
    _, page, dialogs = browse()
    _login(page, server.url)
    page.screenshot(path=SHOTS / "01-empty-list.png")

    rows = workers(120)
    rows[4]["name"] = XSS_NAME
    bad = [dict(r) for r in rows]
    bad[6]["email"] = "not-an-address"
    (tmp_path / "bad.csv").write_bytes(csv_bytes(bad))
    (tmp_path / "good.csv").write_bytes(csv_bytes(rows))

    page.get_by_role("link", name="New campaign").first.click()
    page.get_by_label("Recipients").set_input_files(tmp_path / "bad.csv")
    page.get_by_label("From").fill("HR 人事部 <hr@example.com>")
    page.get_by_label("Campaign name").fill("June check-in 六月")
    page.get_by_role("button", name="Check the list").click()
    problem = page.locator("[data-problems] tr").first
    expect(problem).to_contain_text("not-an-address")
    expect(problem.locator("td").first).to_have_text("7")
    expect(page.locator("[data-ready]")).to_be_hidden()
    page.screenshot(path=SHOTS / "02-validation-error.png")
    with server.client() as client:
        assert client.get("/api/campaigns").json() == []  # nothing created

    page.get_by_label("Recipients").set_input_files(tmp_path / "good.csv")
    page.get_by_role("button", name="Check the list").click()
    expect(page.locator("[data-result-text]")).to_contain_text("120 recipients checked")
    page.get_by_role("button", name="Start sending").click()
    page.wait_for_url("**/campaigns/1")
    expect(page.locator("h1 [data-field=state]")).to_have_text("running")

    expect(page.locator(".stat [data-field=sent]")).not_to_have_text("0")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("h1 [data-field=state]")).to_have_text("paused")
    held = len(sb.messages)
    time.sleep(1.0)
    assert len(sb.messages) == held < 120  # paused: nothing leaves
    page.screenshot(path=SHOTS / "03-paused.png")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".stat [data-field=percent]")).to_have_text("100 %")
    expect(page.locator("h1 [data-field=state]")).to_have_text("done")
    sent = sum(not r["email"].startswith("nouser") for r in rows)
    expect(page.locator(".stat [data-field=sent]")).to_have_text(str(sent))
    expect(page.locator("[data-marks]")).to_contain_text("→ 2 connections")
    page.screenshot(path=SHOTS / "04-done.png")

    cell = page.locator("[data-messages] tr").nth(4).locator(".who span").first
    expect(cell).to_have_text(XSS_NAME)  # text, not an element
    assert page.locator("img[src='x']").count() == 0
    page.locator("[data-messages] [data-preview='5']").click()
    frame = page.frame_locator("iframe[data-preview-frame]")
    expect(frame.locator("img[src^='data:image/png']").first).to_be_visible()
    page.locator(".preview").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "05-preview.png")
    assert dialogs == []


def test_cancel_by_clicking_and_no_token_is_refused(
    browse: Any, served: tuple[Served, Any]
) -> None:
    """Cancel asks for a second click, then the campaign is cancelled and the sandbox receives
    nothing more; a browser without the session is sent to the login page and the API refuses
    it (401)."""
    server, sb = served
    expect = playwright_api.expect
    with server.client() as client:
        made = upload(client, workers(200), name="to cancel").json()
        wait_for(client, made["id"], lambda c: c["counts"]["sent"] >= 5)
    _, page, dialogs = browse()
    _login(page, server.url)
    page.goto(f"{server.url}/campaigns/{made['id']}")
    cancel = page.get_by_role("button", name="Cancel")
    cancel.click()
    page.get_by_role("button", name="Confirm cancel").click()
    expect(page.locator("h1 [data-field=state]")).to_have_text("cancelled")
    held = len(sb.messages)
    time.sleep(0.5)
    assert len(sb.messages) == held < 200
    page.screenshot(path=SHOTS / "06-cancelled.png")
    page.goto(server.url + "/")
    expect(page.locator("tr[data-campaign]")).to_contain_text("cancelled")
    page.screenshot(path=SHOTS / "07-list.png")

    stranger, page, _ = browse()
    answer = stranger.request.get(server.url + "/api/campaigns")
    assert answer.status == 401
    page.goto(f"{server.url}/campaigns/{made['id']}")
    assert "/login?next=" in page.url
    expect(page.get_by_label("API token")).to_be_visible()
    assert dialogs == []
