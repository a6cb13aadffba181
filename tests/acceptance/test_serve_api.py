"""The service's edges: the token, bad requests (4xx that say what and where, nothing created),
idempotency, templates from a zip, routes without passwords, /metrics, and the refusal to listen
beyond loopback without a token."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import (
    ENV,
    SENDER,
    TEMPLATE,
    Served,
    create,
    recipients,
    wait_for,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
BODY = {"template": "hello", "route": "sandbox", "sender": SENDER}


@pytest.fixture
def served(tmp_path: Path, sandbox: Any) -> Iterator[Served]:
    """``serve`` on the strict sandbox, a 64 KiB upload limit, the ``hello`` template made;
    the route ``office`` names a password variable whose value must never be shown."""
    sb = sandbox("strict")
    extra = (
        '[routes.office]\nurl = "smtp+starttls://hr@mail.example.com:587"\n'
        'password_env = "OFFICE_PASSWORD"\nmax_connections = 3\n'
    )
    server = Served(tmp_path, write_config(tmp_path, sb, extra), "--upload-limit", "64k")
    server.start()
    with server.client() as client:
        assert client.post("/api/templates", json=TEMPLATE).status_code == 201
    yield server
    server.stop()


def campaign_folders(served: Served) -> list[Path]:
    """The campaign folders kept in the data directory."""
    folder = served.folder / "mailpacer-service" / "campaigns"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_the_token_is_required_everywhere_but_healthz(served: Served) -> None:
    """No token and a wrong token are 401 on the API, the schema and metrics; /healthz
    answers without one."""
    for token in (None, "wrong-token", served.token + "x"):  # type: ignore[operator]
        with served.client(token=token) as client:
            for path in ("/api/campaigns", "/api/templates", "/metrics", "/openapi.json"):
                response = client.get(path)
                assert response.status_code == 401, path
                assert "token" in response.json()["error"]
            assert client.get("/healthz").json()["status"] == "ok"
    with served.client() as client:
        assert client.get("/api/campaigns").status_code == 200


def test_bad_requests_say_what_and_where_and_create_nothing(served: Served) -> None:
    """Malformed JSON, a CSV with errors, an oversized upload, an unknown route and a CR/LF in
    the sender are 4xx with the reason (file and row for the CSV); no campaign, no folder."""
    with served.client() as client:
        bad_json = client.post(
            "/api/campaigns", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad_json.status_code == 422 and bad_json.json()["problems"]
        csv = "email,name,code\nok@example.com,A,1\nbroken-address,B,2\n"
        upload = client.post(
            "/api/campaigns",
            data=BODY,
            files={"recipients": ("list.csv", csv.encode(), "text/csv")},
        )
        assert upload.status_code == 422
        problem = upload.json()["problems"][0]
        assert problem["file"] == "recipients.csv" and problem["row"] == 2
        assert "broken-address" in problem["message"]
        big = "email,name,code\n" + "".join(f"u{i}@example.com,U,{i}\n" for i in range(5000))
        too_big = client.post(
            "/api/campaigns", data=BODY, files={"recipients": ("big.csv", big.encode(), "text/csv")}
        )
        assert too_big.status_code == 413 and "upload limit" in too_big.json()["error"]
        unknown = client.post(
            "/api/campaigns", json={**BODY, "route": "nope", "recipients": recipients(1)}
        )
        assert unknown.status_code == 422 and "no such route" in unknown.json()["error"]
        injected = client.post(
            "/api/campaigns",
            json={**BODY, "sender": "hr@example.com\r\nBcc: x@evil.test", "recipients": [{}]},
        )
        assert injected.status_code == 422 and "line break" in injected.json()["error"]
        assert client.get("/api/campaigns").json() == []
    assert campaign_folders(served) == []


def test_an_idempotency_key_returns_the_same_campaign(served: Served) -> None:
    """The same request with the same key is one campaign (201, then 200); the key with
    another request is refused (409)."""
    with served.client() as client:
        body = {**BODY, "recipients": recipients(3), "start": False}
        headers = {"Idempotency-Key": "order-42"}
        first = client.post("/api/campaigns", json=body, headers=headers)
        again = client.post("/api/campaigns", json=body, headers=headers)
        other = client.post(
            "/api/campaigns", json={**body, "recipients": recipients(4)}, headers=headers
        )
        assert first.status_code == 201 and again.status_code == 200
        assert first.json()["id"] == again.json()["id"] and again.json()["total"] == 3
        assert other.status_code == 409
        assert len(client.get("/api/campaigns").json()) == 1


def test_templates_from_a_zip_are_validated_on_upload(served: Served) -> None:
    """The worker-qr template folder zipped is accepted with its languages; a template with a
    syntax error is refused with the file at fault; a path escaping the folder is refused."""

    def zipped(files: dict[str, bytes]) -> bytes:
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w") as zf:
            for name, content in files.items():
                zf.writestr(name, content)
        return data.getvalue()

    folder = ROOT / "examples" / "worker-qr" / "templates"
    good = {
        f"templates/{p.relative_to(folder)}": p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file()
    }
    with served.client() as client:
        made = client.post(
            "/api/templates", data={"name": "worker-qr"}, files={"archive": ("t.zip", zipped(good))}
        )
        assert made.status_code == 201, made.text
        assert made.json()["languages"] == ["en", "zh"]
        broken = zipped({"en/subject.txt": b"Hi {{ name", "en/body.txt": b"x"})
        refused = client.post(
            "/api/templates", data={"name": "broken"}, files={"archive": ("b.zip", broken)}
        )
        assert refused.status_code == 422
        assert refused.json()["problems"][0]["file"] == "en/subject.txt"
        escape = zipped({"../evil/subject.txt": b"x"})
        unsafe = client.post(
            "/api/templates", data={"name": "evil"}, files={"archive": ("e.zip", escape)}
        )
        assert unsafe.status_code == 422 and "unsafe" in unsafe.json()["error"]
        names = [t["name"] for t in client.get("/api/templates").json()]
    assert names == ["hello", "worker-qr"]


def test_routes_show_no_password(served: Served) -> None:
    """Routes come from mailpacer.toml with their URL and ceilings; the password's value is
    in no answer (the server's environment holds it)."""
    with served.client() as client:
        routes = {r["name"]: r for r in client.get("/api/routes").json()}
        office = client.get("/api/routes/office").json()
    assert set(routes) == {"sandbox", "office"}
    assert office["url"] == "smtp+starttls://hr@mail.example.com:587"
    assert office["ceilings"] == {"connections": 3}
    assert "password" not in str(routes).lower()


def test_metrics_count_messages_and_replies(served: Served) -> None:
    """After a campaign, /metrics has its messages by state, replies by class and the
    learned limits of its route, in the Prometheus text format."""
    with served.client() as client:
        made = create(client, recipients(20, nouser=2))
        wait_for(client, made["id"], lambda c: c["state"] == "done")
        text = client.get("/metrics").text
    cid = made["id"]
    assert f'mailpacer_messages{{campaign="{cid}",state="sent"}} 18.0' in text
    assert f'mailpacer_replies_total{{campaign="{cid}",verdict="accepted"}} 18.0' in text
    assert f'mailpacer_replies_total{{campaign="{cid}",verdict="recipient-rejected"}} 2.0' in text
    assert 'mailpacer_campaigns{state="done"} 1.0' in text


def test_listening_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    """``serve --host 0.0.0.0`` without MAILPACER_API_TOKEN exits 2 and says why."""
    result = subprocess.run(
        [sys.executable, "-m", "mailpacer", "serve", "--host", "0.0.0.0", "--db",  # noqa: S104
         str(tmp_path / "m.db")],
        env=ENV, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "MAILPACER_API_TOKEN" in result.stderr
