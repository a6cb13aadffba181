"""schemathesis against the running service's OpenAPI schema: no 5xx, and every response
matches the schema (status code, content type, body)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from service_helpers import TEMPLATE, Served, create, recipients, write_config

from mailpacer.sandbox import Sandbox, get_profile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One service for every generated case, with a template and a campaign to find."""
    folder: Path = tmp_path_factory.mktemp("schema")
    with Sandbox(get_profile("unlimited")) as sb:
        served = Served(folder, write_config(folder, sb), "--upload-limit", "256k").start()
        with served.client() as client:
            assert client.post("/api/templates", json=TEMPLATE).status_code == 201
            create(client, recipients(5, nouser=1))
        yield served
        served.stop()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_every_operation_answers_as_documented(api: Served) -> None:
    """Whatever schemathesis sends to any operation (live SSE streams left out), the answer is
    no 5xx and matches the schema."""
    headers = {"Authorization": f"Bearer {api.token}"}
    loaded = schemathesis.openapi.from_url(api.url + "/openapi.json", headers=headers)
    tested = []
    calls: list[int] = []
    for result in loaded.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/events"):
            continue
        tested.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            calls.append(response.status_code)

        check()
    assert "POST /api/campaigns" in tested and len(tested) >= 12
    assert len(calls) >= 10 * len(tested) and 401 not in calls
