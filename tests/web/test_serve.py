"""`errands serve` as a real process: it starts on a migrated database with no other setting, serves the API
(several server processes too), stops on SIGINT, and refuses a database that is not migrated in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from errands.access import Role
from errands.accounts import Accounts
from errands.settings import Settings

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 60.0
PASSWORD = "a password long enough"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def clean_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("ERRANDS_", "JOB_"))}
    return {**env, "ERRANDS_DATABASE_URL": db_url, "FORWARDED_ALLOW_IPS": "127.0.0.1"}


@contextmanager
def serving(db_url: str, cwd: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    command = [sys.executable, "-m", "errands", "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, cwd=cwd, env=clean_env(db_url), stderr=subprocess.PIPE, text=True)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def wait_until_up(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"errands serve exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/api/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # the server is starting: nothing to wait on but its socket
    raise AssertionError(f"errands serve did not answer within {START_TIMEOUT_S} s")


@pytest.mark.backends("sqlite", "postgresql")
def test_serve_answers_a_login_and_stops_on_sigint(db_url: str, tmp_path: Path) -> None:
    accounts = Accounts.open(Settings(database_url=db_url))
    try:
        accounts.create_user("ada", Role.OPERATOR, PASSWORD, actor="test")
    finally:
        accounts.close()
    with serving(db_url, tmp_path, "--workers", "2") as (process, url):
        wait_until_up(process, url)
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/api/auth/me").status_code == 401
            login = http.post("/api/auth/login", json={"username": "ada", "password": PASSWORD})
            assert login.status_code == 200, login.text
            csrf = login.json()["csrf_token"]
            for _ in range(4):  # two server processes share the session: it is a database row
                me = http.get("/api/auth/me")
                assert me.status_code == 200 and me.json()["user"] == "ada"
            assert "server" not in me.headers
            assert http.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
            assert http.get("/api/auth/me").status_code == 401
        with httpx.Client(base_url=url, timeout=10) as proxied:  # as a TLS proxy on this host forwards it
            https = {"X-Forwarded-Proto": "https"}
            login = proxied.post("/api/auth/login", json={"username": "ada", "password": PASSWORD}, headers=https)
            assert login.status_code == 200
            assert "secure" in login.headers["set-cookie"].lower()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()


@pytest.mark.backends("postgresql")
def test_a_database_not_migrated_is_one_line_and_exit_6(fresh_db_url: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "errands", "serve", "--port", str(free_port())]
    done = subprocess.run(
        command, cwd=tmp_path, env=clean_env(fresh_db_url), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 6
    assert "errands migrate" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_sqlite_default_is_migrated_at_first_start(tmp_path: Path) -> None:
    with serving(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path) as (process, url):
        wait_until_up(process, url)
        assert httpx.get(f"{url}/api/jobs", timeout=10).status_code == 401
