"""The dashboard's pages over HTTP from a real ``mailpacer serve`` (uvicorn on 127.0.0.1, the
sandbox, SQLite): login once per session, pages and their ``.json`` twins, escaping, the
sandboxed message preview with its QR code, static files from the package."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_helpers import XSS_NAME, add_template, upload, workers
from service_helpers import TOKEN, Served, wait_for, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, sandbox: Any) -> Iterator[Served]:
    """``serve`` with a token on the strict sandbox, the worker-qr template uploaded, and one
    finished campaign of 12 workers (one named like an HTML tag, one unknown to the server)."""
    sb = sandbox("strict")
    server = Served(tmp_path, write_config(tmp_path, sb)).start()
    with server.client() as client:
        add_template(client)
        rows = workers(12)
        rows[1]["name"] = XSS_NAME
        rows[2]["email"] = "nouser.dash@example.com"
        made = upload(client, rows, name="June <b>check-in</b>")
        assert made.status_code == 201, made.text
        wait_for(client, made.json()["id"], lambda c: c["state"] == "done")
    yield server
    server.stop()


def test_pages_need_the_token_and_the_login_sets_a_session_cookie(served: Served) -> None:
    """Without the token a page sends the browser to /login and a page's JSON (and the API) is
    401; a wrong token is refused; the right one sets an HttpOnly, SameSite=Strict session
    cookie (not the token itself) that pages and the API accept."""
    with httpx.Client(base_url=served.url, timeout=30) as anon:
        first = anon.get("/campaigns/1")
        assert first.status_code == 303 and first.headers["location"] == "/login?next=/campaigns/1"
        assert anon.get("/campaigns/1.json").status_code == 401
        assert anon.get("/api/campaigns").status_code == 401
        assert anon.get("/static/app.css").status_code == 200  # no data in static files
        wrong = anon.post("/login", data={"token": "nope", "next": "/"})
        assert wrong.status_code == 401 and "That is not the token." in wrong.text
        good = anon.post("/login", data={"token": TOKEN, "next": "/campaigns/1"})
        assert good.status_code == 303 and good.headers["location"] == "/campaigns/1"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        assert anon.get("/campaigns/1").status_code == 200
        assert anon.get("/api/campaigns/1").json()["state"] == "done"
        # a request from another site carrying the cookie changes nothing
        forged = anon.post("/api/campaigns/1/retry", headers={"Origin": "https://evil.example"})
        assert forged.status_code == 401


def test_login_goes_only_to_paths_on_this_server(served: Served) -> None:
    """``next`` naming another site (``//evil``, a full URL) lands on ``/`` instead."""
    with httpx.Client(base_url=served.url, timeout=30) as anon:
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            answer = anon.post("/login", data={"token": TOKEN, "next": target})
            assert answer.headers["location"] == "/"


def test_campaign_page_escapes_user_data_and_has_a_json_twin(served: Served) -> None:
    """The recipient named like an HTML tag and the campaign's name appear escaped; the page's
    JSON has the campaign, its failures grouped with the server's reply, and the history."""
    with served.client() as client:
        html = client.get("/campaigns/1").text
        data = client.get("/campaigns/1.json").json()
        listing = client.get("/").text
    assert XSS_NAME not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>check-in</b>" not in listing and "June &lt;b&gt;check-in&lt;/b&gt;" in listing
    assert data["campaign"]["counts"]["sent"] == 11 and data["campaign"]["progress"] == 1
    [group] = data["failures"]
    assert group["count"] == 1 and group["code"] == 550 and group["verdict"]
    assert group["recipients"][0]["email"] == "nouser.dash@example.com"
    assert "550" in group["reply"] and "<address>" in group["reason"]
    assert len(data["history"]["samples"]) >= 1
    assert {"kind": "state", "text": "done"} in [
        {"kind": m["kind"], "text": m["text"]} for m in data["history"]["marks"]
    ]


def client_headers(served: Served, path: str) -> list[str]:
    """The page's Content-Security-Policy directives."""
    with served.client() as client:
        return client.get(path).headers["content-security-policy"].split(";")


def test_pages_forbid_inline_script(served: Served) -> None:
    """Every page's Content-Security-Policy allows only our own scripts: no inline script, no
    other origin; pages cannot be framed by others."""
    directives = [d.strip() for d in client_headers(served, "/campaigns/1")]
    assert "script-src 'self'" in directives and "frame-ancestors 'none'" in directives


def test_preview_shows_the_message_with_its_qr_code_sandboxed(served: Served) -> None:
    """Row 1's message renders as HTML with the QR code inlined as a PNG; the answer carries a
    sandboxing CSP (no script); a row that does not exist is a 404."""
    with served.client() as client:
        answer = client.get("/campaigns/1/preview/1")
        missing = client.get("/campaigns/1/preview/999")
    assert answer.status_code == 200
    assert re.search(r'<img[^>]+src="data:image/png;base64,', answer.text)
    assert answer.headers["content-security-policy"].startswith("sandbox;")
    assert "马建华" in answer.text  # row 1 is Chinese
    assert missing.status_code == 404


def test_new_campaign_page_offers_templates_and_routes(served: Served) -> None:
    """The form lists the uploaded template and the configured route; its JSON too."""
    with served.client() as client:
        html = client.get("/campaigns/new").text
        data = client.get("/campaigns/new.json").json()
    assert data == {"templates": ["worker-qr"], "routes": ["sandbox"]}
    assert "<option>worker-qr</option>" in html and "<option>sandbox</option>" in html


def test_static_files_come_from_the_package(served: Served) -> None:
    """CSS and scripts are served from the package with their types; nothing from elsewhere."""
    with httpx.Client(base_url=served.url, timeout=30) as anon:
        css = anon.get("/static/app.css")
        js = anon.get("/static/campaign.js")
        page = anon.post("/login", data={"token": TOKEN}, follow_redirects=True).text
    assert css.headers["content-type"].startswith("text/css") and "Noto Sans CJK SC" in css.text
    assert "javascript" in js.headers["content-type"] and "innerHTML" not in js.text
    assert not re.search(r'(src|href)="(https?:)?//', page)
