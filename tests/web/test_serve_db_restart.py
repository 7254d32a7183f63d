"""A running `errands serve` survives its database restarting (issue 11 item 11): while the database is down it
answers 503 on /readyz and on the routes that need the database (a JSON body, never a traceback), /healthz
stays 200, and once the database is back it answers again by itself, with no failed request after that. A
real server process on a throwaway PostgreSQL (tests/pgserver.py): never the shared server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from errands.access import Role, Scope
from errands.accounts import Accounts
from errands.settings import Settings
from errands.store import SqlStore
from errands.store.migrate import upgrade
from pgserver import PgServer, free_port

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60.0
# requests that need the database: /readyz (a round trip), the jobs list (the token's lookup, its rate-limit
# counter, the search), the stats
NEEDS_DATABASE = ("/readyz", "/api/jobs", "/api/stats")


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=url,
        log_file=tmp_path / "logs" / "job.log",
        error_log_file=tmp_path / "logs" / "error.log",
        rate_limit=1_000_000,
    )


def viewer_token(settings: Settings) -> str:
    accounts = Accounts.open(settings)
    try:
        accounts.create_user("watcher", Role.VIEWER, "a password for the test", actor="test")
        _, token = accounts.create_token("watcher", Scope.READ, expires_days=1, name="test", actor="test")
    finally:
        accounts.close()
    return token


@pytest.fixture
def served(pg_server: PgServer, tmp_path: Path) -> Iterator[httpx.Client]:
    """`errands serve` on the throwaway PostgreSQL (migrated), and an HTTP client with a viewer's token."""
    store = SqlStore(pg_server.url)
    try:
        upgrade(store)
    finally:
        store.close()
    settings = settings_for(pg_server.url, tmp_path)
    token = viewer_token(settings)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERRANDS_", "JOB_"))}
    env.update(
        ERRANDS_CONFIG=str(tmp_path / "none.toml"),
        ERRANDS_DATABASE_URL=pg_server.url,
        ERRANDS_LOG_FILE=str(settings.log_file),
        ERRANDS_ERROR_LOG_FILE=str(settings.error_log_file),
        ERRANDS_RATE_LIMIT=str(settings.rate_limit),
    )
    (tmp_path / "none.toml").write_text("")
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "errands", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(http):
            assert server.poll() is None, f"errands serve exited: {(tmp_path / 'serve.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"errands serve not up after {START_TIMEOUT_S:g}s"
            time.sleep(0.05)
        yield http
    finally:
        http.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(15)
        log.close()


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _statuses(http: httpx.Client) -> dict[str, int]:
    return {path: http.get(path).status_code for path in NEEDS_DATABASE}


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_serve_answers_503_while_its_database_is_down_and_recovers_by_itself(
    served: httpx.Client, pg_server: PgServer, mode: str
) -> None:
    assert _statuses(served) == dict.fromkeys(NEEDS_DATABASE, 200)

    pg_server.stop(mode)  # type: ignore[arg-type]
    for path in NEEDS_DATABASE:
        down = served.get(path)
        assert down.status_code == 503, (path, down.status_code, down.text)
        assert down.headers["content-type"].startswith("application/json")
        assert "error" in down.json() and "Traceback" not in down.text
    assert served.get("/healthz").status_code == 200  # the process is up: only readiness fails

    pg_server.start()
    # the database accepts connections from here on: no request fails any more, the first one included
    for _ in range(20):
        assert _statuses(served) == dict.fromkeys(NEEDS_DATABASE, 200)


def test_serve_idle_through_a_restart_answers_its_first_request_after_it(
    served: httpx.Client, pg_server: PgServer
) -> None:
    """No request while the database was down told the server's pools: they find their closed connections at
    checkout (store/liveness.py)."""
    assert _statuses(served) == dict.fromkeys(NEEDS_DATABASE, 200)
    pg_server.restart("fast")
    assert _statuses(served) == dict.fromkeys(NEEDS_DATABASE, 200)
