"""The OpenAPI document tells the truth about errors and methods; HEAD answers like GET without a body."""

from __future__ import annotations

import re
from typing import Any

import httpx

from api.main import create_app
from tests.api.conftest import Published, path_of
from tests.conftest import LiveServer

METHODS = {"get", "head", "post", "put", "patch", "delete"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _schema_of(operation: dict[str, Any], status: str) -> str:
    return operation["responses"][status]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]


def test_openapi_documents_auth_errors_validation_errors_and_head(published: Published) -> None:
    with LiveServer(create_app()) as server:
        document = httpx.get(f"{server.url}/openapi.json").json()
    operations = _operations(document)
    protected = [(p, m, o) for p, m, o in operations if o.get("security")]
    assert {p for p, _, _ in protected} >= {"/scores", "/predict", "/models/champion"}
    for path, method, operation in protected:
        for status in ("401", "403"):
            assert _schema_of(operation, status) == "Problem", (path, method, status)
    for path, method, operation in operations:
        if "422" in operation["responses"]:
            assert _schema_of(operation, "422") == "HTTPValidationError", (path, method)
    assert "422" in document["paths"]["/predict"]["post"]["responses"]
    assert "422" in document["paths"]["/scores"]["get"]["responses"]
    assert "410" in document["paths"]["/scores"]["get"]["responses"]
    gets = {p for p, m, _ in operations if m == "get"}
    heads = {p for p, m, _ in operations if m == "head"}
    assert gets and heads == gets
    ids = [o["operationId"] for _, _, o in operations]
    assert len(ids) == len(set(ids))


def test_head_answers_like_get_without_a_body(published: Published) -> None:
    target = f"/scores/{path_of(published.both)}"
    with LiveServer(create_app()) as server:
        got = httpx.get(server.url + target)
        head = httpx.head(server.url + target)
        head_missing = httpx.head(f"{server.url}/scores/{path_of(published.unknown)}")
        head_health = httpx.head(f"{server.url}/healthz")
        head_page = httpx.head(f"{server.url}/scores", params={"limit": 3})
        head_post = httpx.head(f"{server.url}/predict")
    assert got.status_code == 200 and head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head_missing.status_code == 404 and head_missing.content == b""
    assert head_health.status_code == 200 and head_page.status_code == 200
    assert head_post.status_code == 405


def test_docs_page_loads_swagger_ui_from_this_api(published: Published) -> None:
    """/docs works on an air-gapped network: every file the page loads is served by the API itself."""
    with LiveServer(create_app()) as server:
        page = httpx.get(f"{server.url}/docs")
        assert page.status_code == 200
        loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert loaded and all(url.startswith("/docs/assets/") for url in loaded), loaded
        for url in loaded:
            assert httpx.get(f"{server.url}{url}").status_code == 200, url
        assert httpx.get(f"{server.url}/docs/assets/package.json").status_code == 404
        assert httpx.get(f"{server.url}/redoc").status_code == 404
