"""The FastAPI app: `create_app(settings)`, and `app_from_env()` for uvicorn's factory mode (`errands serve`).

The lifespan opens one Client (jobs) and one Accounts (users, sessions, tokens, limits, audit) for the process
and keeps them in an AppState on `app.state.errands`; every route reaches them through `deps.app_state`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from errands.accounts import Accounts
from errands.client import connect
from errands.settings import Settings, load_settings
from errands.web import errors, metrics
from errands.web.deps import AppState
from errands.web.middleware import BodyLimit, SecurityHeaders
from errands.web.responses import JSONResponse
from errands.web.routes import admin, auth, events, health, jobs, observe
from errands.web.spa import mount_dashboard

API_TITLE = "errands"
API_VERSION = "1"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings)
        try:
            accounts = Accounts.open(settings)
            try:
                app.state.errands = AppState(settings=settings, client=client, accounts=accounts)
                yield
            finally:
                accounts.close()
        finally:
            client.close()

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 here: one open route less
        default_response_class=JSONResponse,
    )
    errors.install(app)
    for router in (
        auth.router,
        jobs.router,
        admin.router,
        observe.router,
        events.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    mount_dashboard(app)  # after the API's routes: the dashboard's pages never shadow /api
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so a 413 gets the headers too
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory (`errands.web.app:app_from_env`, factory=True): each worker process reads the settings."""
    return create_app(load_settings())
