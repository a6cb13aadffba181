"""Composed messages parsed back with the standard library: structure, headers, languages,
escaping, QR codes, attachments, refused injections, line lengths, determinism."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from compose_helpers import EXAMPLE, EXAMPLE_TEMPLATE, SENDER, SIMPLE, decode_qr, parse, write_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from mailpacer.compose import Composer, iter_recipients, load_template
from mailpacer.core.errors import InputError

WORKER = {
    "email": "wu.lei.0003@example.com",
    "name": "吴磊",
    "language": "zh",
    "worker_id": "W0003",
    "site": "北门仓库",
    "shift_date": "2026-06-17",
    "attachment": "",
}


@pytest.fixture
def composer() -> Composer:
    """A composer for the worker-qr example."""
    return Composer(
        load_template(EXAMPLE_TEMPLATE), sender=SENDER, campaign_key="c1", base_dir=EXAMPLE
    )


def content(message: EmailMessage, subtype: str) -> str:
    """The decoded text of the message's plain or HTML body, line endings as ``\\n``."""
    body = message.get_body((subtype,))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def assert_wire_format(message: bytes) -> None:
    """CRLF line endings only, every line within 998 octets, 7-bit clean."""
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", message) is None, "bare CR or LF"
    assert max(len(line) for line in message.split(b"\r\n")) <= 998
    assert message.isascii()


def test_structure_of_a_qr_message(composer: Composer) -> None:
    """multipart/alternative(text, related(html, png)); the HTML references the image's
    Content-ID, and the image decodes to the worker's check-in URL."""
    message = parse(composer.render(WORKER))
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()  # type: ignore[misc]
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = related.get_payload()
    assert (html.get_content_type(), image.get_content_type()) == ("text/html", "image/png")
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html.get_content()
    assert decode_qr(image.get_payload(decode=True)) == "https://checkin.example.com/c/W0003"


def test_headers_decode_to_chinese(composer: Composer) -> None:
    """From, To and Subject decode to the Chinese names and subject; Message-ID is the
    composer's; MIME-Version and Date are present."""
    message = parse(composer.render(WORKER))
    assert str(message["Subject"]) == "吴磊，您在北门仓库的签到二维码（2026-06-17）"
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("吴磊", "wu.lei.0003@example.com")
    assert message["From"].addresses[0].display_name == "Site Operations 现场运营"
    assert message["Message-ID"] == composer.message_id("wu.lei.0003@example.com")
    assert message["MIME-Version"] == "1.0"
    assert message["Date"].datetime is not None


def test_languages_pick_their_templates(composer: Composer) -> None:
    """zh, zh-CN and en-GB rows get the matching texts; the HTML declares its language."""
    zh = parse(composer.render({**WORKER, "language": "zh-CN"}))
    en = parse(
        composer.render({**WORKER, "language": "en-GB", "name": "Sarah Smith", "site": "East Gate"})
    )
    assert "工号：W0003" in content(zh, "plain")
    assert '<html lang="zh">' in content(zh, "html")
    assert str(en["Subject"]) == "Sarah Smith, your check-in code for East Gate on 2026-06-17"
    assert "Worker ID: W0003" in content(en, "plain")
    assert '<html lang="en">' in content(en, "html")


def test_html_escapes_variables_but_text_does_not(composer: Composer) -> None:
    """A name like <script> renders as text in HTML; the plain part keeps it verbatim; the
    header carries it verbatim too (as a quoted display name)."""
    name = '<script>alert("x")</script> & Co'
    message = parse(composer.render({**WORKER, "language": "en", "name": name}))
    html = content(message, "html")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in html
    assert name in content(message, "plain")
    assert message["To"].addresses[0].display_name == name


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "Eve\r\nBcc: everyone@example.com"},
        {"name": "Eve\nX-Injected: yes"},
        {"site": "Gate\rBcc: x@example.com"},  # site is used in the subject
        {"email": "eve@example.com\nBcc: x@example.com"},
        {"shift_date": "2026\n\nbody"},
    ],
)
def test_header_injection_is_refused(composer: Composer, changes: dict[str, str]) -> None:
    """CR/LF in any value that reaches a header is an InputError; nothing is produced."""
    with pytest.raises(InputError, match="line break"):
        composer.render({**WORKER, **changes})


def test_sender_and_list_unsubscribe_injection_refused() -> None:
    """The sender and List-Unsubscribe are checked the same way."""
    template = load_template(EXAMPLE_TEMPLATE)
    with pytest.raises(InputError, match="line break"):
        Composer(
            template,
            sender="ops@example.com\nBcc: x@example.com",
            campaign_key="c",
            base_dir=EXAMPLE,
        )
    composer = Composer(
        template,
        sender=SENDER,
        campaign_key="c",
        base_dir=EXAMPLE,
        list_unsubscribe="mailto:unsubscribe@example.com?subject={{ worker_id }}",
    )
    message = parse(composer.render(WORKER))
    assert message["List-Unsubscribe"] == "<mailto:unsubscribe@example.com?subject=W0003>"
    with pytest.raises(InputError, match="line break"):
        composer.render({**WORKER, "worker_id": "W1\r\nBcc: x@example.com"})


def test_wire_format_for_every_example_worker(composer: Composer) -> None:
    """All 200 example workers render to CRLF, ≤ 998-octet, 7-bit messages with their own QR."""
    seen_ids = set()
    for recipient in iter_recipients(EXAMPLE / "workers.csv"):
        raw = composer.render(recipient.variables)
        assert_wire_format(raw)
        message = parse(raw)
        assert message["To"].addresses[0].addr_spec == recipient.email
        seen_ids.add(message["Message-ID"])
    assert len(seen_ids) == 200


def test_long_lines_are_encoded_within_limits(tmp_path: Path) -> None:
    """A 5,000-character HTML line and a 2,000-character subject stay within 998 octets per
    line and decode back exactly."""
    directory = write_tree(
        tmp_path,
        {
            "en/subject.txt": "{{ long }}\n",
            "en/body.txt": "{{ long }}\n",
            "en/body.html": "<p>{{ long }}</p>\n",
        },
    )
    composer = Composer(
        load_template(directory), sender="a@example.com", campaign_key="c", base_dir=tmp_path
    )
    long = "x" * 2000 + " 签到 " + "=y" * 1500
    raw = composer.render({"email": "b@example.com", "long": long})
    assert_wire_format(raw)
    message = parse(raw)
    assert str(message["Subject"]) == long
    assert content(message, "html") == f"<p>{long}</p>\n"
    assert content(message, "plain") == f"{long}\n"


def test_rendering_is_deterministic_except_date(composer: Composer) -> None:
    """Same variables, same bytes (Date aside); Message-ID depends on campaign and address only."""
    first, second = composer.render(WORKER), composer.render(WORKER)
    strip_date = re.compile(rb"^Date: .*\r\n", re.MULTILINE)
    assert strip_date.sub(b"", first) == strip_date.sub(b"", second)
    assert composer.message_id("WU.LEI.0003@example.com ") == composer.message_id(
        "wu.lei.0003@example.com"
    )
    other = Composer(composer.template, sender=SENDER, campaign_key="c2", base_dir=EXAMPLE)
    assert other.message_id("wu.lei.0003@example.com") != composer.message_id(
        "wu.lei.0003@example.com"
    )
    assert re.fullmatch(r"<[0-9a-f]{24}@example\.com>", composer.message_id("a@example.com"))


def test_attachment_column_and_attach_helper(tmp_path: Path) -> None:
    """The attachment column and attach() add files (non-ASCII names RFC 2231-encoded);
    template.toml attachments go to every message; the structure becomes multipart/mixed."""
    campaign = write_tree(
        tmp_path,
        {
            "files/合同 W1.pdf": b"%PDF-1.4 contract",
            "files/badge.txt": "badge",
            "templates/template.toml": 'attachments = ["shared/rules.txt"]\n',
            "templates/shared/rules.txt": "site rules",
            "templates/en/subject.txt": "Hi\n",
            "templates/en/body.txt": "{{ attach('files/badge.txt', name='徽章.txt') }}Hi\n",
            "templates/en/body.html": "<p>Hi</p>{{ qr(code) }}",
        },
    )
    composer = Composer(
        load_template(campaign / "templates"),
        sender="a@example.com",
        campaign_key="c",
        base_dir=campaign,
    )
    raw = composer.render(
        {"email": "b@example.com", "code": "C1", "attachment": "files/合同 W1.pdf"}
    )
    assert_wire_format(raw)
    message = parse(raw)
    assert message.get_content_type() == "multipart/mixed"
    files = {
        part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()
    }
    assert files == {
        "rules.txt": b"site rules",
        "徽章.txt": b"badge",
        "合同 W1.pdf": b"%PDF-1.4 contract",
    }
    types = [part.get_content_type() for part in message.walk()]
    assert types[:5] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [("../outside.pdf", "outside the campaign folder"), ("files/none.pdf", "file not found")],
)
def test_bad_attachment_paths_are_refused(tmp_path: Path, path: str, message: str) -> None:
    """An attachment outside the campaign folder or missing is an InputError at render."""
    (tmp_path / "outside.pdf").write_bytes(b"secret")
    campaign = write_tree(tmp_path / "campaign", SIMPLE)
    composer = Composer(
        load_template(campaign), sender="a@example.com", campaign_key="c", base_dir=campaign
    )
    with pytest.raises(InputError, match=message):
        composer.render({"email": "b@example.com", "name": "B", "code": "1", "attachment": path})


def test_missing_variable_and_unknown_language(composer: Composer) -> None:
    """A row without a variable the template needs names the variable; a language without a
    folder (and no fallback) is refused."""
    without_site = {k: v for k, v in WORKER.items() if k != "site"}
    with pytest.raises(InputError, match="missing variable: 'site' is undefined"):
        composer.render(without_site)
    with pytest.raises(InputError, match="unknown language 'fr'"):
        composer.render({**WORKER, "language": "fr"})


def test_text_only_template_is_a_single_part(tmp_path: Path) -> None:
    """Without body.html the message is one text/plain part, and qr() writes its value."""
    directory = write_tree(
        tmp_path, {"en/subject.txt": "Hi\n", "en/body.txt": "Code: {{ qr(code) }}\n"}
    )
    composer = Composer(
        load_template(directory), sender="a@example.com", campaign_key="c", base_dir=tmp_path
    )
    message = parse(composer.render({"email": "b@example.com", "code": "ABC-1"}))
    assert message.get_content_type() == "text/plain"
    assert content(message, "plain") == "Code: ABC-1\n"


def test_repeated_qr_value_is_one_image(tmp_path: Path) -> None:
    """The same value twice in one message is one image part; different values are two."""
    directory = write_tree(
        tmp_path,
        {
            "en/subject.txt": "Hi\n",
            "en/body.txt": "Hi\n",
            "en/body.html": "{{ qr(a) }}{{ qr(a, size=100) }}{{ qr(b, ec='H') }}",
        },
    )
    composer = Composer(
        load_template(directory), sender="a@example.com", campaign_key="c", base_dir=tmp_path
    )
    message = parse(composer.render({"email": "b@example.com", "a": "one", "b": "二"}))
    images = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert [decode_qr(p.get_payload(decode=True)) for p in images] == ["one", "二"]
    assert 'width="100"' in content(message, "html")


def test_repr_shows_template_and_sender(composer: Composer) -> None:
    """The composer's repr names its template, sender and campaign."""
    assert repr(composer).startswith("<Composer <Template templates languages=en,zh> from=")
    assert repr(composer).endswith("campaign='c1'>")


def test_overlong_values_stay_within_line_limits(tmp_path: Path) -> None:
    """A 1,500-character name without spaces is encoded into short words; an overlong
    attachment file name and List-Unsubscribe URL are refused instead of breaking the limit."""
    campaign = write_tree(tmp_path, {**SIMPLE, "files/a.txt": "a"})
    composer = Composer(
        load_template(campaign), sender="a@example.com", campaign_key="c", base_dir=campaign
    )
    raw = composer.render({"email": "b@example.com", "name": "N" * 1500, "code": "1"})
    assert_wire_format(raw)
    assert parse(raw)["To"].addresses[0].display_name.replace(" ", "") == "N" * 1500
    long_url = Composer(
        load_template(campaign),
        sender="a@example.com",
        campaign_key="c",
        base_dir=campaign,
        list_unsubscribe="https://example.com/u?" + "q" * 1000,
    )
    with pytest.raises(InputError, match="under 900 chars"):
        long_url.render({"email": "b@example.com", "name": "B", "code": "1"})
    write_tree(campaign, {"en/body.txt": "{{ attach('files/a.txt', name='x' * 300) }}"})
    long_name = Composer(
        load_template(campaign), sender="a@example.com", campaign_key="c", base_dir=campaign
    )
    with pytest.raises(InputError, match="longer than 255 bytes"):
        long_name.render({"email": "b@example.com", "name": "B", "code": "1"})


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=40),
    site=st.text(
        st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]), min_size=1, max_size=40
    ),
    worker_id=st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=30),
    language=st.sampled_from(["en", "zh", "zh-TW", "EN_us"]),
)
def test_any_values_render_a_valid_message(
    composer: Composer, name: str, site: str, worker_id: str, language: str
) -> None:
    """Property: any single-line values give a well-formed message whose subject, name and
    QR code decode to exactly what went in, with values escaped in HTML and verbatim in text."""
    variables = {**WORKER, "name": name, "site": site, "worker_id": worker_id, "language": language}
    raw = composer.render(variables)
    assert_wire_format(raw)
    message = parse(raw)
    subject = str(message["Subject"])
    assert " ".join(site.split()) in " ".join(subject.split())
    if name.strip():
        assert message["To"].addresses[0].display_name.replace(" ", "") == "".join(name.split())
    assert worker_id in content(message, "plain").replace("\n", "")
    assert str(escape(worker_id)) in content(message, "html").replace("\n", "")
    (image,) = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert decode_qr(image.get_payload(decode=True)) == "https://checkin.example.com/c/" + worker_id


def test_list_unsubscribe_from_template_toml(tmp_path: Path) -> None:
    """template.toml's list_unsubscribe is rendered per recipient; a Jinja error in it is a
    template.toml problem."""
    directory = write_tree(
        tmp_path,
        {
            **SIMPLE,
            "template.toml": (
                'list_unsubscribe = "mailto:leave@example.com?subject={{ email }}, '
                'https://example.com/u/{{ code }}"\n'
            ),
        },
    )
    composer = Composer(
        load_template(directory), sender="a@example.com", campaign_key="c", base_dir=tmp_path
    )
    message = parse(composer.render({"email": "b@example.com", "name": "B", "code": "7"}))
    assert message["List-Unsubscribe"] == (
        "<mailto:leave@example.com?subject=b@example.com>, <https://example.com/u/7>"
    )
    (directory / "template.toml").write_text('list_unsubscribe = "{{ oops"\n', encoding="utf-8")
    with pytest.raises(InputError, match="list_unsubscribe: unexpected end of template"):
        load_template(directory)
