"""The template directory: one folder per language, an optional layout and ``template.toml``.

Layout (documented in README.md, "Templates")::

    TEMPLATE_DIR/
      template.toml        optional: fallback_language, attachments, attachment_column
      layout.html          optional; bodies use {% extends "layout.html" %}
      en/subject.txt       one line (Jinja2)
      en/body.txt          plain-text part (required)
      en/body.html         HTML part (optional; HTML-autoescaped)
      zh/...

Templates are Jinja2 with ``StrictUndefined`` (a variable the row lacks is an error, never an
empty string) and autoescaping for ``.html``. :func:`load_template` reports every problem it finds
as ``file:line`` in one :class:`InputError`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from jinja2 import meta, nodes

from mailpacer.compose.attachments import AttachmentError, resolve_inside
from mailpacer.compose.helpers import HELPERS
from mailpacer.core.errors import InputError, Problem

CONFIG_FILE = "template.toml"
SUBJECT, TEXT, HTML = "subject.txt", "body.txt", "body.html"
DEFAULT_ATTACHMENT_COLUMN = "attachment"
_CONFIG_KEYS = {
    "fallback_language",
    "attachments",
    "attachment_column",
    "qr_mask",
    "list_unsubscribe",
    "unsubscribe_url",
}
_LANGUAGE_DIR = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_TOML_WHERE = re.compile(r"\(at line (\d+), column (\d+)\)")
#: names that are never row variables: our helpers and Jinja2's default globals
BUILTIN_NAMES = frozenset(HELPERS) | {"range", "dict", "lipsum", "cycler", "joiner", "namespace"}


@dataclass(frozen=True)
class Language:
    """The compiled templates of one language."""

    code: str
    subject: jinja2.Template
    text: jinja2.Template
    html: jinja2.Template | None
    #: variables the templates need, each with the first place it is used (``en/body.html:12``)
    variables: dict[str, str] = field(default_factory=dict)
    #: variables the subject uses: they go into a header, so CR/LF in them is refused
    subject_variables: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Template:
    """A loaded template directory (see the module docstring for its layout)."""

    directory: Path
    languages: dict[str, Language]
    fallback_language: str | None = None
    attachments: tuple[Path, ...] = ()  #: campaign-wide files, resolved, inside ``directory``
    attachment_column: str = DEFAULT_ATTACHMENT_COLUMN
    #: QR data mask 0-7, or None to score all eight as the standard says (about 2× slower
    #: composing; fixed masks decode as well in our tests)
    qr_mask: int | None = None
    #: ``List-Unsubscribe`` URLs (a Jinja2 string: ``mailto:...?subject={{ email }}``), or None
    list_unsubscribe: str | None = None
    #: base of the RFC 8058 one-click unsubscribe link (``https://...``), or None
    unsubscribe_url: str | None = None

    def __repr__(self) -> str:
        fallback = f" fallback={self.fallback_language}" if self.fallback_language else ""
        return f"<Template {self.directory.name} languages={','.join(self.languages)}{fallback}>"

    def match_language(self, value: str) -> Language | None:
        """The folder ``value`` names: the exact tag (any case, ``_`` or ``-``), else its
        primary subtag (``zh-CN`` -> ``zh``); ``None`` without a match (no fallback here)."""
        key = value.strip().lower().replace("_", "-")
        if not key:
            return None
        return self.languages.get(key) or self.languages.get(key.split("-", 1)[0])

    def language_for(self, value: str) -> Language | None:
        """The language a row's ``language`` value picks: exact tag, then its primary subtag
        (``zh-CN`` -> ``zh``), then the fallback; with one language and no fallback, an empty
        value picks that one. ``None`` when nothing fits."""
        found = self.match_language(value)
        if found is not None:
            return found
        key = value.strip()
        if self.fallback_language is not None:
            return self.languages[self.fallback_language]
        if not key and len(self.languages) == 1:
            return next(iter(self.languages.values()))
        return None


def make_environment(directory: Path) -> jinja2.Environment:
    """The Jinja2 environment for one template directory."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "htm"), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=-1,
    )
    env.globals.update(HELPERS)
    return env


def load_template(template_dir: Path) -> Template:
    """Load and check a template directory; raises :class:`InputError` listing every problem."""
    directory = Path(template_dir)
    if not directory.is_dir():
        raise InputError(Problem("template directory not found", file=str(directory)))
    problems: list[Problem] = []
    config = _read_config(directory, problems)
    env = make_environment(directory)
    languages: dict[str, Language] = {}
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        if not any((sub / name).is_file() for name in (SUBJECT, TEXT, HTML)):
            continue  # not a language folder (e.g. files/, images/)
        if not _LANGUAGE_DIR.fullmatch(sub.name):
            problems.append(
                Problem("folder name is not a language tag (e.g. en, zh, pt-BR)", file=str(sub))
            )
            continue
        language = _load_language(env, directory, sub.name, problems)
        if language is not None:
            languages[language.code] = language
    if not languages and not problems:
        problems.append(
            Problem(
                f"no language folders (e.g. en/{SUBJECT}, en/{TEXT}) in the template",
                file=str(directory),
            )
        )
    fallback = config.get("fallback_language")
    if isinstance(fallback, str):
        fallback = fallback.strip().lower().replace("_", "-")
        if languages and fallback not in languages:
            problems.append(
                Problem(
                    f"fallback_language {fallback!r} has no folder (have: {', '.join(languages)})",
                    file=str(directory / CONFIG_FILE),
                )
            )
    attachments = _config_attachments(directory, config.get("attachments", []), problems)
    column = config.get("attachment_column", DEFAULT_ATTACHMENT_COLUMN)
    qr_mask = config.get("qr_mask")
    if isinstance(qr_mask, bool) or (isinstance(qr_mask, int) and not 0 <= qr_mask <= 7):
        problems.append(
            Problem("qr_mask must be between 0 and 7", file=str(directory / CONFIG_FILE))
        )
    unsubscribe = config.get("list_unsubscribe")
    if isinstance(unsubscribe, str):
        try:
            env.parse(unsubscribe)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(
                Problem(f"list_unsubscribe: {exc.message}", file=str(directory / CONFIG_FILE))
            )
    one_click = config.get("unsubscribe_url")
    if isinstance(one_click, str) and not one_click.startswith("https://"):
        problems.append(
            Problem(
                f"unsubscribe_url {one_click!r}: expected an https:// URL (RFC 8058)",
                file=str(directory / CONFIG_FILE),
            )
        )
    if problems:
        raise InputError(problems)
    return Template(
        directory=directory,
        languages=languages,
        fallback_language=fallback if isinstance(fallback, str) else None,
        attachments=attachments,
        attachment_column=str(column),
        qr_mask=qr_mask if isinstance(qr_mask, int) and not isinstance(qr_mask, bool) else None,
        list_unsubscribe=unsubscribe if isinstance(unsubscribe, str) else None,
        unsubscribe_url=one_click if isinstance(one_click, str) else None,
    )


def _read_config(directory: Path, problems: list[Problem]) -> dict[str, object]:
    """``template.toml`` as a dict (empty when absent); syntax errors as ``file:line:column``."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        where = _TOML_WHERE.search(str(exc))
        line, column = (int(where[1]), int(where[2])) if where else (None, None)
        problems.append(Problem(f"not valid TOML: {exc}", file=str(path), line=line, column=column))
        return {}
    for key in sorted(set(config) - _CONFIG_KEYS):
        problems.append(
            Problem(
                f"unknown setting {key!r} (known: {', '.join(sorted(_CONFIG_KEYS))})",
                file=str(path),
            )
        )
    expected = {
        "fallback_language": str,
        "attachments": list,
        "attachment_column": str,
        "qr_mask": int,
        "list_unsubscribe": str,
        "unsubscribe_url": str,
    }
    for key, kind in expected.items():
        if key in config and not isinstance(config[key], kind):
            problems.append(Problem(f"{key} must be a {kind.__name__}", file=str(path)))
            del config[key]
    return config


def _config_attachments(
    directory: Path, names: object, problems: list[Problem]
) -> tuple[Path, ...]:
    """Campaign-wide attachments from ``template.toml``: existing files inside the template dir."""
    found: list[Path] = []
    for name in names if isinstance(names, list) else []:
        try:
            found.append(resolve_inside(directory, str(name)))
        except AttachmentError as exc:
            problems.append(Problem(f"attachments: {exc}", file=str(directory / CONFIG_FILE)))
    return tuple(found)


def _load_language(
    env: jinja2.Environment, directory: Path, code: str, problems: list[Problem]
) -> Language | None:
    """Compile one language folder; syntax errors, missing parts and layouts become problems."""
    before = len(problems)
    for required in (SUBJECT, TEXT):
        if not (directory / code / required).is_file():
            problems.append(Problem(f"missing {required}", file=str(directory / code / required)))
    names = [f"{code}/{n}" for n in (SUBJECT, TEXT, HTML) if (directory / code / n).is_file()]
    variables: dict[str, str] = {}
    for name in names:
        _analyse(env, directory, name, variables, problems, seen=set())
    subject_variables: dict[str, str] = {}
    if f"{code}/{SUBJECT}" in names:
        _analyse(env, directory, f"{code}/{SUBJECT}", subject_variables, [], seen=set())
    subject = directory / code / SUBJECT
    if subject.is_file():
        lines = subject.read_text(encoding="utf-8", errors="replace").rstrip("\r\n").splitlines()
        if len(lines) > 1:
            problems.append(Problem("the subject must be one line", file=str(subject), line=2))
    if len(problems) > before:
        return None
    html = env.get_template(f"{code}/{HTML}") if f"{code}/{HTML}" in names else None
    return Language(
        code=code.lower(),
        subject=env.get_template(f"{code}/{SUBJECT}"),
        text=env.get_template(f"{code}/{TEXT}"),
        html=html,
        variables=variables,
        subject_variables=frozenset(subject_variables),
    )


def _analyse(
    env: jinja2.Environment,
    directory: Path,
    name: str,
    variables: dict[str, str],
    problems: list[Problem],
    seen: set[str],
) -> None:
    """Parse ``name`` (and the templates it extends/includes): syntax errors become problems,
    the variables it needs are added to ``variables`` with their first use."""
    if name in seen:
        return
    seen.add(name)
    path = directory / name
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path))
        )
        return
    try:
        tree = env.parse(source, name, str(path))
    except jinja2.TemplateSyntaxError as exc:
        problems.append(
            Problem(f"template syntax error: {exc.message}", file=str(path), line=exc.lineno)
        )
        return
    guarded = set(_guarded_names(tree))
    for variable in sorted(meta.find_undeclared_variables(tree) - BUILTIN_NAMES - guarded):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == variable), 1)
        variables.setdefault(variable, f"{name}:{line}")
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        target = getattr(node, "template", None)
        if not isinstance(target, nodes.Const) or not isinstance(target.value, str):
            continue  # computed template name: checked when rendered
        if not (directory / target.value).is_file():
            problems.append(
                Problem(f"template {target.value!r} not found", file=str(path), line=node.lineno)
            )
            continue
        _analyse(env, directory, target.value, variables, problems, seen)


def _guarded_names(tree: nodes.Template) -> Iterator[str]:
    """Names used only under ``is defined`` / ``is undefined`` tests or the ``default`` filter:
    optional by the author's intent, so a row without them is not a problem."""
    for test in tree.find_all(nodes.Test):
        if test.name in ("defined", "undefined") and isinstance(test.node, nodes.Name):
            yield test.node.name
    for filt in tree.find_all(nodes.Filter):
        if filt.name in ("default", "d") and isinstance(filt.node, nodes.Name):
            yield filt.node.name
