"""The app's frame, before any database: the schema is served, unknown paths and oversized bodies get JSON
answers with the security headers."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.testclient import TestClient

from errands.settings import Settings
from errands.web.app import create_app


def test_openapi_and_headers_without_a_lifespan() -> None:
    client = TestClient(create_app(Settings()))  # no `with`: no lifespan, so no database
    schema = client.get("/api/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "errands"
    assert schema.headers["x-content-type-options"] == "nosniff"
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found"}
    assert missing.headers["content-type"] == "application/json"


def test_body_limit_with_and_without_content_length() -> None:
    client = TestClient(create_app(Settings(max_body_bytes=4096)))

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    declared = client.post("/api/nothing-here", content=b"x" * 5000)
    chunked = client.post("/api/nothing-here", content=chunks())
    for response in (declared, chunked):
        assert response.status_code == 413
        assert "over the limit of 4096 bytes" in response.json()["error"]
