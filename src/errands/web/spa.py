"""The dashboard: the React app built from web/ into errands/web/static/ (`make web`, or the wheel's build hook).

`mount_dashboard(app)` serves the hashed assets under /assets and index.html for each of the app's own routes
(the client-side router takes it from there). It never answers for /api/*, /metrics, /healthz or /readyz: those
paths are not among its routes. Its pages carry a strict Content-Security-Policy: the build has no inline script
or style, and the app talks only to its own origin (the API and the event stream).
When the assets were not built, its pages answer 503 with what to run, rather than a blank page or a 404.

Its routes are plain Starlette routes and a mount, not API routes: they serve the same static file to anyone
(the app asks the API who is signed in), so they need no authentication and stay out of the OpenAPI schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

# The client-side routes (web/src/App.tsx): each gets index.html. Anything else is not the dashboard's.
CLIENT_ROUTES = (
    "/",
    "/login",
    "/overview",
    "/jobs",
    "/jobs/logs",
    "/jobs/{job_id:int}",
    "/failures",
    "/queues",
    "/workers",
    "/audit",
)

# (method, path) of the pages, in the form of errands.web.deps.OPEN_ROUTES: they need no authentication
DASHBOARD_ROUTES = frozenset(("GET", path) for path in CLIENT_ROUTES)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",  # no 'unsafe-inline': the app sets styles only through the DOM (CSSOM)
        "img-src 'self' data:",  # data: for the browser's own form controls' images
        "connect-src 'self'",  # the API and the event stream
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

NOT_BUILT = (
    "The dashboard's assets were not built. In a checkout run `make web` (Node 20.19+ and npm), "
    "or install errands from a wheel, which includes them."
)


class _Assets(StaticFiles):
    """Hashed file names (index-3f2a.js): a name never changes content, so a browser may keep it for good."""

    async def check_config(self) -> None:
        # not built yet: each asset is a plain 404 (the pages say what to run), not a server error
        if self.directory is not None and Path(self.directory).is_dir():
            await super().check_config()

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def mount_dashboard(app: FastAPI, *, static_dir: Path | None = None) -> None:
    """Serve the built dashboard from `static_dir` (default: errands/web/static beside this module)."""
    root = static_dir if static_dir is not None else STATIC_DIR
    index = root / "index.html"

    async def page(request: Request) -> Response:
        if not index.is_file():
            return _not_built(request)
        # index.html names the current build's assets: always ask again, so a new build is picked up at once
        return FileResponse(index, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    for path in CLIENT_ROUTES:
        app.router.routes.append(Route(path, page, methods=["GET", "HEAD"], include_in_schema=False))
    app.router.routes.append(Mount("/assets", app=_Assets(directory=root / "assets", check_dir=False), name="assets"))


def _not_built(request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Retry-After": "60"}
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": "dashboard not built", "detail": NOT_BUILT}, status_code=503, headers=headers)
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>errands: dashboard not built</title>"
        f"</head><body><h1>The dashboard is not built</h1><p>{NOT_BUILT}</p>"
        "<p>The API is up: <a href='/api/openapi.json'>/api/openapi.json</a>.</p></body></html>"
    )
    return HTMLResponse(html, status_code=503, headers=headers)
