"""Real databases for every tier of tests.

Each test that asks for `db_url` gets a fresh, migrated database of its own on each backend: a file on
SQLite, a schema on PostgreSQL, a database on MariaDB. A server that doesn't answer skips its tests with the
reason, except under CI (CI set), where an absent server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa

from errands.store import SqlStore
from errands.store.engine import normalize_url
from errands.store.migrate import upgrade
from pgserver import PgServer

PG_URL = os.environ.get("ERRANDS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("ERRANDS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
BACKENDS = ("sqlite", "postgresql", "mariadb")


@cache
def _server_problem(backend: str) -> str | None:
    """Why the backend's server can't be used, or None when it answers."""
    url = PG_URL if backend == "postgresql" else MYSQL_URL
    try:
        engine = sa.create_engine(normalize_url(url), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"{backend} at {url} is not reachable: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def require_server(backend: str) -> None:
    if backend == "sqlite":
        return
    problem = _server_problem(backend)
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem} (CI must test every backend)")
    pytest.skip(problem)


def _admin(url: str) -> sa.Engine:
    return sa.create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")


@pytest.fixture
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) on the backend the test is parametrized with."""
    backend: str = getattr(request, "param", "sqlite")
    require_server(backend)
    name = f"errands_t_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'errands.db'}"
        return
    if backend == "postgresql":
        admin = _admin(PG_URL)
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {name}"))
        yield f"{PG_URL}?options=-csearch_path%3D{name}"
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
    else:
        admin = _admin(MYSQL_URL)
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        yield MYSQL_URL.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}"))
    admin.dispose()


@pytest.fixture
def db_url(fresh_db_url: str) -> str:
    """A migrated database of its own."""
    store = SqlStore(fresh_db_url)
    try:
        upgrade(store)
    finally:
        store.close()
    return fresh_db_url


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(db_url)
    yield opened
    opened.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that use a database run on every backend unless they pin one with @pytest.mark.backends(...)."""
    if "fresh_db_url" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        backends = marker.args if marker else BACKENDS
        metafunc.parametrize("fresh_db_url", backends, indirect=True, ids=list(backends))


@pytest.fixture
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL of this test's own, started (tests/pgserver.py): for tests that stop, kill or
    restart their database. Stopped and removed afterwards, whatever the test did."""
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
