"""Connections the server ends: an idle pooled one is replaced before use (no failed call, no ping per call);
one lost inside a transaction fails that transaction as StoreUnavailable, and the next call reconnects.

On the shared servers, each test ends only its own store's sessions (pg_terminate_backend, KILL). Whole
restarts are in test_store_restart.py, on a throwaway PostgreSQL.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from errands.errors import StoreError, StoreUnavailable
from errands.jobs import NewJob
from errands.store import SqlStore
from errands.store.engine import normalize_url

pytestmark = pytest.mark.backends("postgresql", "mariadb")

_SESSION_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
_END_SESSION = {"postgresql": "SELECT pg_terminate_backend({id})", "mysql": "KILL CONNECTION {id}"}
_SESSION_ALIVE = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE pid = {id}",
    "mysql": "SELECT count(*) FROM information_schema.processlist WHERE id = {id}",
}


def _session_id(conn: sa.Connection, dialect: str) -> int:
    return int(conn.exec_driver_sql(_SESSION_ID[dialect]).scalar_one())


def _end_session(url: str, dialect: str, session: int) -> None:
    """End one session from another connection, and wait until the server has let it go."""
    admin = sa.create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(_END_SESSION[dialect].format(id=session))
            deadline = time.monotonic() + 10
            while conn.exec_driver_sql(_SESSION_ALIVE[dialect].format(id=session)).scalar_one():
                assert time.monotonic() < deadline, f"session {session} still alive"
                time.sleep(0.02)
    finally:
        admin.dispose()


def test_an_idle_pooled_connection_the_server_ended_is_replaced_before_use(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        with store.engine.connect() as conn:  # the pool's one connection, then idle in it
            before = _session_id(conn, store.dialect)
        _end_session(db_url, store.dialect, before)

        job_id = store.job_insert(
            NewJob("app.tasks.Plain", "")
        )  # no StoreError: the pool swapped the dead connection at checkout

        assert store.job_get(job_id).id == job_id
        with store.engine.connect() as conn:
            assert _session_id(conn, store.dialect) != before
    finally:
        store.close()


def test_a_connection_lost_inside_a_transaction_fails_it_as_unavailable_then_the_next_call_reconnects(
    db_url: str,
) -> None:
    store = SqlStore(db_url)
    try:
        with pytest.raises(StoreUnavailable) as lost, store._tx(write=False) as conn:
            _end_session(db_url, store.dialect, _session_id(conn, store.dialect))
            conn.execute(sa.text("SELECT 1"))
        assert "connection to the database was lost" in str(lost.value)
        assert "may or may not" not in str(lost.value)  # nothing was committed: the caller may simply retry

        assert store.job_insert(NewJob("app.tasks.Plain", "")) > 0
    finally:
        store.close()


def test_a_connection_lost_at_commit_says_the_outcome_is_unknown(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        with pytest.raises(StoreUnavailable) as lost, store._tx(write=True) as conn:
            conn.execute(sa.text("SELECT 1"))
            _end_session(db_url, store.dialect, _session_id(conn, store.dialect))
        assert "may or may not have been applied" in str(lost.value)
    finally:
        store.close()


def test_a_refused_statement_is_a_plain_store_error_not_unavailable(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        with pytest.raises(StoreError) as refused, store._tx(write=False) as conn:
            conn.execute(sa.text("SELECT * FROM errands_no_such_table"))
        assert not isinstance(refused.value, StoreUnavailable)
        assert store.job_insert(NewJob("app.tasks.Plain", "")) > 0
    finally:
        store.close()
