"""The template directory: languages, layout, template.toml, and problems with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from compose_helpers import EXAMPLE_TEMPLATE, SIMPLE, write_tree

from mailpacer.compose import load_template
from mailpacer.core.errors import InputError


def problems_of(directory: Path) -> list[str]:
    """The problems load_template reports, as strings."""
    with pytest.raises(InputError) as caught:
        load_template(directory)
    return [str(p) for p in caught.value.problems]


def test_example_template_loads() -> None:
    """The worker-qr example has en and zh, no fallback, and knows which variables it needs."""
    template = load_template(EXAMPLE_TEMPLATE)
    assert repr(template) == "<Template templates languages=en,zh>"
    assert set(template.languages["zh"].variables) == {
        "name",
        "site",
        "shift_date",
        "worker_id",
    }  # `attachment` is optional (`is defined`): issue 14.5
    assert template.languages["en"].variables["site"] == "en/subject.txt:1"
    assert template.languages["en"].subject_variables == {"name", "site", "shift_date"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("ZH_cn", "zh"),
        ("en-GB", "en"),
        (" EN ", "en"),
        ("fr", None),
        ("", None),
    ],
)
def test_language_matching_without_fallback(value: str, expected: str | None) -> None:
    """Exact tag, then primary subtag, any case; unknown or empty values pick nothing."""
    language = load_template(EXAMPLE_TEMPLATE).language_for(value)
    assert (language.code if language else None) == expected


def test_fallback_language_and_single_language(tmp_path: Path) -> None:
    """With fallback_language, unknown and empty values get it; a one-language template needs
    no fallback for rows without a language."""
    both = write_tree(
        tmp_path / "both", {**SIMPLE, "zh/subject.txt": "你好\n", "zh/body.txt": "你好\n"}
    )
    (both / "template.toml").write_text('fallback_language = "EN"\n', encoding="utf-8")
    template = load_template(both)
    assert template.fallback_language == "en"
    assert [template.language_for(v).code for v in ("fr", "", "zh")] == ["en", "en", "zh"]  # type: ignore[union-attr]
    single = load_template(write_tree(tmp_path / "single", SIMPLE))
    assert single.language_for("").code == "en"  # type: ignore[union-attr]
    assert single.language_for("fr") is None


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A template that does not parse is reported as file:line with Jinja's message."""
    directory = write_tree(tmp_path, {**SIMPLE, "en/body.html": "<p>ok</p>\n<p>{{ name </p>\n"})
    (problem,) = problems_of(directory)
    assert problem.startswith(f"{directory / 'en' / 'body.html'}:2: template syntax error")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Missing parts, bad TOML, a bad layout reference and a multi-line subject are all listed."""
    directory = write_tree(
        tmp_path,
        {
            "template.toml": 'fallback_language = "en"\nqr_mask = = 2\n',
            "en/subject.txt": "Hello\n{{ name }}\n",
            "en/body.txt": "{% extends 'missing-layout.txt' %}\n",
            "zh/body.html": "<p>你好</p>",
        },
    )
    problems = problems_of(directory)
    assert any("template.toml:2:11: not valid TOML" in p for p in problems), problems
    assert any("en/subject.txt:2: the subject must be one line" in p for p in problems)
    assert any("en/body.txt:1: template 'missing-layout.txt' not found" in p for p in problems)
    assert any(p.endswith("zh/subject.txt: missing subject.txt") for p in problems)
    assert any(p.endswith("zh/body.txt: missing body.txt") for p in problems)


def test_config_problems(tmp_path: Path) -> None:
    """Unknown settings, wrong types, a fallback without folder, attachments outside the folder
    or missing, and a bad qr_mask are problems of template.toml."""
    directory = write_tree(
        tmp_path / "t",
        {
            **SIMPLE,
            "template.toml": (
                'fallback_languag = "en"\nfallback_language = "de"\nattachment_column = 3\n'
                'attachments = ["../secret.txt", "files/none.pdf"]\nqr_mask = 9\n'
            ),
        },
    )
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    problems = "\n".join(problems_of(directory))
    assert "unknown setting 'fallback_languag'" in problems
    assert "attachment_column must be a str" in problems
    assert "fallback_language 'de' has no folder (have: en)" in problems
    assert "'../secret.txt' is outside the campaign folder" in problems
    assert "'files/none.pdf': file not found" in problems
    assert "qr_mask must be between 0 and 7" in problems


def test_missing_directory_and_no_languages(tmp_path: Path) -> None:
    """A missing folder and a folder without any language are clear problems."""
    assert problems_of(tmp_path / "nope")[0].endswith("template directory not found")
    (tmp_path / "files").mkdir()
    assert "no language folders" in problems_of(tmp_path)[0]


def test_guarded_variables_are_optional(tmp_path: Path) -> None:
    """Variables used only under `is defined` or with `default` are not required columns."""
    directory = write_tree(
        tmp_path,
        {
            "en/subject.txt": "Hi{% if nickname is defined %} {{ nickname }}{% endif %}\n",
            "en/body.txt": "{{ team | default('all') }} {{ code }} {% set x = 1 %}{{ x }}\n",
        },
    )
    assert set(load_template(directory).languages["en"].variables) == {"code"}


def test_layout_variables_count(tmp_path: Path) -> None:
    """Variables of an extended layout are required too, located in the layout file."""
    directory = write_tree(
        tmp_path,
        {
            "layout.html": "<html>{% block content %}{% endblock %}<p>{{ company }}</p></html>",
            "en/subject.txt": "Hi\n",
            "en/body.txt": "Hi\n",
            "en/body.html": '{% extends "layout.html" %}{% block content %}{{ name }}{% endblock %}'
            "\n",
        },
    )
    variables = load_template(directory).languages["en"].variables
    assert variables == {"name": "en/body.html:1", "company": "layout.html:1"}
