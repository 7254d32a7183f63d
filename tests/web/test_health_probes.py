"""The probes: /healthz answers without a database; /readyz makes a round trip, answers 503 while the database is
away and 200 again by itself once it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from errands.client import Client
from errands.settings import Settings
from errands.store import SqlStore
from errands.web.app import create_app
from errands.web.deps import AppState
from tcpproxy import TcpProxy


def app_on(url: str) -> tuple[FastAPI, Client]:
    """The app with its state made by hand (no lifespan: the probes need only the Client). The store is opened
    without a schema check, so the app exists whether or not the database answers."""
    settings = Settings(database_url=url)
    client = Client(settings, SqlStore(url))
    app = create_app(settings)
    app.state.errands = AppState(settings=settings, client=client, accounts=None)
    return app, client


@pytest.fixture
def probe() -> Iterator[Any]:
    opened: list[Client] = []

    def make(url: str) -> TestClient:
        app, client = app_on(url)
        opened.append(client)
        return TestClient(app)

    yield make
    for client in opened:
        client.close()


def test_healthz_needs_no_database(probe: Any) -> None:
    http = probe("postgresql://nobody@127.0.0.1:1/none")  # a closed port
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.backends("sqlite", "postgresql")
def test_readyz_is_200_on_a_reachable_database(probe: Any, db_url: str) -> None:
    response = probe(db_url).get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "error": None}


def test_readyz_is_503_json_when_the_database_is_unreachable(probe: Any) -> None:
    response = probe("postgresql://nobody@127.0.0.1:1/none").get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "error": "database unavailable"}
    assert "127.0.0.1" not in response.text  # where the database lives is nobody's business
    assert response.headers["retry-after"] == "1"


def poll_status(http: TestClient, path: str, wanted: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (status := http.get(path).status_code) != wanted:
        assert time.monotonic() < deadline, f"{path} still {status}, not {wanted}, after {timeout_s} s"
        time.sleep(0.1)


@pytest.mark.backends("postgresql")
def test_readyz_follows_the_database_away_and_back(probe: Any, db_url: str) -> None:
    """The database (reached through a proxy the test cuts) goes away: 503; it comes back: 200, by itself."""
    host_port = db_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    try:
        http = probe(db_url.replace(host_port, f"127.0.0.1:{proxy.port}"))
        assert http.get("/readyz").status_code == 200  # the pool holds a connection through the proxy now
        proxy.cut()
        poll_status(http, "/readyz", 503)
        proxy.restore()
        poll_status(http, "/readyz", 200)
        assert [http.get("/readyz").status_code for _ in range(5)] == [200] * 5
    finally:
        proxy.close()
