"""The dashboard's pages and assets as errands serves them (src/errands/web/spa.py): index.html for the app's
own routes and nothing else, a strict CSP on every page, long caching for hashed assets, and a clear 503 when the
assets were not built. The React app itself is tested by Vitest (web/) and end to end by Playwright."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.routing import Route

from errands.web.spa import CLIENT_ROUTES, CONTENT_SECURITY_POLICY, DASHBOARD_ROUTES, STATIC_DIR, mount_dashboard

with warnings.catch_warnings():
    # starlette's TestClient on httpx warns at import (it wants httpx2): the ASGI client works as it is
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

INDEX = '<!doctype html><html><head><script type="module" src="/assets/index-abc.js"></script></head></html>'


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index-abc.js").write_text("console.log('dashboard')")
    return tmp_path


def app_with_api(static_dir: Path) -> FastAPI:
    app = FastAPI()

    @app.get("/api/jobs")
    def jobs() -> dict[str, list[int]]:
        return {"jobs": []}

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    mount_dashboard(app, static_dir=static_dir)
    return app


@pytest.mark.parametrize(
    "path",
    ["/", "/login", "/overview", "/jobs", "/jobs/logs", "/jobs/42", "/failures", "/queues", "/workers", "/audit"],
)
def test_each_client_route_gets_index_html_with_the_strict_headers(built: Path, path: str) -> None:
    response = TestClient(app_with_api(built)).get(path, params={"status": "failed"})
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"


def test_the_api_and_probes_are_never_the_dashboard(built: Path) -> None:
    client = TestClient(app_with_api(built))
    assert client.get("/api/jobs").json() == {"jobs": []}
    assert client.get("/healthz").json() == {"ok": True}
    for path in ("/api/nope", "/api/jobs/1/nope", "/metrics", "/readyz", "/jobs/abc", "/jobs/1/more", "/index.html"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "text/html" not in response.headers.get("content-type", ""), path


def test_dashboard_routes_name_every_page_route(built: Path) -> None:
    """DASHBOARD_ROUTES is what an open-routes list (errands.web.deps.OPEN_ROUTES) needs to know of the pages."""
    app = app_with_api(built)
    pages = {
        ("GET", route.path) for route in app.routes if isinstance(route, Route) and route.endpoint.__name__ == "page"
    }
    assert pages == DASHBOARD_ROUTES


def test_no_route_is_in_the_api_schema(built: Path) -> None:
    schema = TestClient(app_with_api(built)).get("/openapi.json").json()
    assert set(schema["paths"]) == {"/api/jobs", "/healthz"}


def test_assets_are_served_with_long_caching_and_the_headers(built: Path) -> None:
    client = TestClient(app_with_api(built))
    response = client.get("/assets/index-abc.js")
    assert response.status_code == 200
    assert response.text == "console.log('dashboard')"
    assert "javascript" in response.headers["content-type"]
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/assets/missing.js").status_code == 404
    assert client.get("/assets/../index.html").status_code == 404


def test_without_a_build_the_pages_answer_503_saying_what_to_run(tmp_path: Path) -> None:
    client = TestClient(app_with_api(tmp_path / "nothing"))
    page = client.get("/jobs", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 503
    assert "make web" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    data = client.get("/jobs", headers={"Accept": "application/json"})
    assert data.status_code == 503
    assert data.json()["error"] == "dashboard not built"
    assert client.get("/assets/index-abc.js").status_code == 404
    assert client.get("/api/jobs").status_code == 200  # the API is unaffected


def test_client_routes_match_the_apps_router() -> None:
    """Every route of web/src/App.tsx is served, so a reload or a shared link never 404s."""
    app_tsx = (Path(__file__).parents[2] / "web" / "src" / "App.tsx").read_text()
    declared = set(re.findall(r'<Route path="([^"*]+)"', app_tsx)) - {"*"}
    served = {re.sub(r"\{job_id:int\}", ":id", route) for route in CLIENT_ROUTES}
    assert declared <= served, declared - served


def test_the_real_build_has_no_inline_script_or_style() -> None:
    """What the strict CSP needs of the build: every script and stylesheet a file under /assets/."""
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        pytest.skip("the dashboard is not built (make web)")
    html = index.read_text()
    assert "<style" not in html
    assert " style=" not in html
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts, "index.html loads no script"
    for attributes, body in scripts:
        assert body.strip() == "", "an inline script: the CSP would refuse it"
        source = re.search(r'src="([^"]+)"', attributes)
        assert source and source.group(1).startswith("/assets/")
        assert (STATIC_DIR / source.group(1).lstrip("/")).is_file()
    client = TestClient(app_with_api(STATIC_DIR))
    for asset in re.findall(r'(?:src|href)="(/assets/[^"]+)"', html):
        assert client.get(asset).status_code == 200, asset


@pytest.mark.backends("sqlite")
def test_in_the_real_app_each_page_carries_one_policy_the_dashboards(db_url: str, tmp_path: Path) -> None:
    """Once create_app mounts the dashboard: its pages carry the dashboard's policy alone (a second, stricter
    policy from the API's headers would be enforced too, and `default-src 'none'` would block the app), while the
    API keeps its own."""
    web_app = pytest.importorskip("errands.web.app", reason="errands.web.app (h/webcore) is not merged here")
    from errands.settings import Settings

    settings = Settings(
        database_url=db_url,
        log_file=tmp_path / "job.log",
        error_log_file=tmp_path / "error.log",
        secret_key="k" * 32,
    )
    with TestClient(web_app.create_app(settings)) as client:
        page = client.get("/jobs", headers={"Accept": "text/html"})
        assert page.status_code in (200, 503)  # 503: not built here
        assert page.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]
        assert page.headers.get_list("x-frame-options") == ["DENY"]
        api = client.get("/api/jobs")
        assert api.status_code == 401
        assert api.headers.get_list("content-security-policy") != [CONTENT_SECURITY_POLICY]
