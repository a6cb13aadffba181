"""``/api/templates``: upload a template folder as a zip, or make one from JSON; validated
whole on upload (a 422 says which file and line)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from mailpacer.core.errors import Problem
from mailpacer.service.errors import ERRORS, ApiError
from mailpacer.service.models import TemplateCreate, TemplateOut
from mailpacer.service.runtime import service_of
from mailpacer.service.template_store import language_files

__all__ = ["router"]

router = APIRouter(prefix="/api/templates", tags=["templates"], responses=ERRORS)

_CREATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TemplateCreate"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "archive"],
                    "properties": {
                        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                        "archive": {"type": "string", "format": "binary"},
                    },
                }
            },
        },
    }
}


@router.get("", response_model=list[TemplateOut], summary="Every template")
async def list_templates(request: Request) -> list[TemplateOut]:
    """Stored templates with their languages and files."""
    store = service_of(request).templates
    return [TemplateOut(**store.describe(name)) for name in store.names()]  # type: ignore[arg-type]


@router.get("/{name}", response_model=TemplateOut, summary="One template")
async def get_template(request: Request, name: str) -> TemplateOut:
    """A template's languages and files."""
    return TemplateOut(**service_of(request).templates.describe(name))  # type: ignore[arg-type]


@router.post(
    "",
    status_code=201,
    response_model=TemplateOut,
    openapi_extra=_CREATE_BODY,
    summary="Create a template from a zip (multipart) or JSON",
)
async def create_template(request: Request) -> TemplateOut:
    """Kept only when it loads whole: every problem comes back as a 422."""
    service = service_of(request)
    store = service.templates
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = TemplateCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = [
                Problem(str(e["msg"]), file=".".join(str(x) for x in e["loc"]) or None)
                for e in exc.errors()
            ]
            raise ApiError(422, f"the template is not valid: {problems[0]}", problems) from None
        files = language_files(
            {code: (lang.subject, lang.text, lang.html) for code, lang in body.languages.items()}
        )
        if body.fallback_language:
            files["template.toml"] = f"fallback_language = {_toml_string(body.fallback_language)}\n"
        name = body.name
        await asyncio.to_thread(store.from_files, name, files)
    elif kind == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=5)
        name_field, archive = form.get("name"), form.get("archive")
        if not isinstance(name_field, str) or not isinstance(archive, UploadFile):
            raise ApiError(422, "the form needs a field 'name' and a file 'archive' (a zip)")
        name = name_field
        limit = service.config.upload_limit
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "template.zip"
            path.write_bytes(await archive.read())
            await asyncio.to_thread(store.from_zip, name, path, limit)
    else:
        raise ApiError(415, "send application/json or multipart/form-data")
    return TemplateOut(**store.describe(name))  # type: ignore[arg-type]


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
