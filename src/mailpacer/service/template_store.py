"""Templates as named server-side resources: folders under ``DATA_DIR/templates``, each
validated whole (``compose.load_template``) before it is kept; made from a zip or from JSON."""

from __future__ import annotations

import dataclasses
import re
import shutil
import stat
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from mailpacer.compose import load_template
from mailpacer.core.errors import InputError, NotFound, Problem
from mailpacer.service.errors import ApiError

__all__ = ["NAME", "TemplateStore"]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
MAX_FILES = 1000


class TemplateStore:
    """The named templates in one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"<TemplateStore {self.root} {self.names()}>"

    def names(self) -> list[str]:
        """Every template's name, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and NAME.fullmatch(p.name))

    def path(self, name: str) -> Path:
        """The folder of template ``name``; :class:`NotFound` when there is none."""
        if NAME.fullmatch(name) and (self.root / name).is_dir():
            return self.root / name
        known = ", ".join(self.names()) or "none yet: POST /api/templates"
        raise NotFound(f"template {name!r}: no such template (known: {known})")

    def describe(self, name: str) -> dict[str, object]:
        """Its languages, fallback and files (for the API)."""
        folder = self.path(name)
        template = load_template(folder)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        return {
            "name": name,
            "languages": sorted(template.languages),
            "fallback_language": template.fallback_language,
            "files": files,
        }

    def from_files(self, name: str, files: dict[str, str]) -> None:
        """A template from ``{relative path: text}`` (JSON), validated, kept as ``name``."""
        staging = self._staging()
        try:
            for relative, text in files.items():
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            self._keep(name, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def from_zip(self, name: str, archive: Path, limit: int) -> None:
        """A template from a zip (a folder as ``mailpacer preview`` reads it, at the top or in
        one folder), validated, kept as ``name``. Unsafe members (absolute paths, ``..``,
        links) and archives unpacking beyond ``limit`` bytes are refused."""
        staging = self._staging()
        try:
            try:
                with zipfile.ZipFile(archive) as zf:
                    _extract(zf, staging, limit)
            except zipfile.BadZipFile as exc:
                raise ApiError(422, f"the template is not a zip file: {exc}") from None
            entries = [p for p in staging.iterdir() if not p.name.startswith(("__MACOSX", "."))]
            root = staging
            wrapper = len(entries) == 1 and entries[0].is_dir()
            if wrapper and not (entries[0] / "subject.txt").exists():
                root = entries[0]  # zipped as one folder (not a lone language folder)
            self._keep(name, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _staging(self) -> Path:
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        return staging

    def _keep(self, name: str, folder: Path) -> None:
        if not NAME.fullmatch(name):
            raise ApiError(422, f"template name {name!r}: letters, digits, '.', '_' or '-'")
        if (self.root / name).exists():
            raise ApiError(409, f"template {name!r} exists already; choose another name")
        try:
            load_template(folder)
        except InputError as exc:
            prefix = str(folder) + "/"
            problems = [
                dataclasses.replace(
                    p,
                    file=(p.file or "").removeprefix(prefix).removeprefix(str(folder)) or None,
                    message=p.message.replace(prefix, ""),
                )
                for p in exc.problems
            ]
            raise ApiError(
                422, f"template {name!r} is not valid: {problems[0]}", problems
            ) from None
        folder.rename(self.root / name)


def _extract(zf: zipfile.ZipFile, target: Path, limit: int) -> None:
    members = zf.infolist()
    if len(members) > MAX_FILES:
        raise ApiError(422, f"the zip has {len(members)} entries; at most {MAX_FILES}")
    if sum(m.file_size for m in members) > limit:
        raise ApiError(413, f"the zip unpacks to more than the upload limit ({limit} bytes)")
    for member in members:
        path = PurePosixPath(member.filename)
        mode = member.external_attr >> 16
        if path.is_absolute() or ".." in path.parts or "\\" in member.filename:
            raise ApiError(422, f"unsafe path in the zip: {member.filename!r}")
        if stat.S_ISLNK(mode):
            raise ApiError(422, f"links are not allowed in the zip: {member.filename!r}")
        if member.is_dir():
            (target / path).mkdir(parents=True, exist_ok=True)
            continue
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        with zf.open(member) as source, (target / path).open("wb") as sink:
            shutil.copyfileobj(source, sink)


def language_files(
    languages: dict[str, tuple[str, str | None, str | None]],
) -> dict[str, str]:
    """``{code: (subject, text, html)}`` as the files of a template folder."""
    files: dict[str, str] = {}
    for code, (subject, text, html) in languages.items():
        if not _LANGUAGE.fullmatch(code):
            raise ApiError(
                422,
                f"language {code!r} is not a language tag (e.g. en, zh, pt-BR)",
                [Problem("not a language tag", file=f"languages.{code}")],
            )
        files[f"{code}/subject.txt"] = subject
        if text is not None:
            files[f"{code}/body.txt"] = text
        if html is not None:
            files[f"{code}/body.html"] = html
    return files
