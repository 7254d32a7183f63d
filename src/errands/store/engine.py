"""Engines for the three backends: URL normalisation and per-connection settings."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from errands.errors import ConfigError

_IN_TRANSACTION = 1  # MySQL protocol: SERVER_STATUS_IN_TRANS, in the status flags of every reply

_DRIVERS = {
    "sqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
    "mariadb+pymysql": "mysql+pymysql",
}


def normalize_url(raw: str) -> URL:
    """Accept the plain URLs users write (postgresql://, mysql://, mariadb://) and pick our drivers."""
    try:
        url = make_url(raw)
    except Exception:
        raise ConfigError("database_url", f"not a database URL: {_masked(raw)!r}") from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError("database_url", f"unsupported database {url.drivername!r} (sqlite, postgresql, mysql)")
    return url.set(drivername=driver)


def _masked(raw: str) -> str:
    """A URL SQLAlchemy can't parse can't hide its own password: mask whatever sits between `user:` and the
    last `@` (a password may hold an `@` itself)."""
    return re.sub(r"(://[^:/@?#]*):.*@", r"\1:***@", raw, flags=re.DOTALL)


def create(raw_url: str) -> Engine:
    """No pre-ping: it would cost a round trip per transaction. A dropped connection fails one transaction
    (StoreError), SQLAlchemy discards it, and the caller's next one reconnects (the worker loop retries)."""
    url = normalize_url(raw_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if url.get_backend_name() == "mysql":
        return _mysql_engine(url)
    return create_engine(url)


def _mysql_engine(url: URL) -> Engine:
    # READ COMMITTED: fewer gap locks under SKIP LOCKED claims; UTC sessions so DB times are UTC
    engine = create_engine(
        url,
        isolation_level="READ COMMITTED",
        connect_args={"init_command": "SET time_zone = '+00:00'"},
        pool_reset_on_return=None,  # see _reset
    )

    @event.listens_for(engine, "reset")
    def _reset(dbapi_conn: Any, _record: Any, state: Any) -> None:
        # The pool's own reset sends ROLLBACK whenever a connection comes back: on MariaDB a round trip per
        # transaction, though ours end in COMMIT or ROLLBACK already. The server says in every reply whether a
        # transaction is open; only then is there anything to roll back.
        if not state.terminate_only and dbapi_conn.server_status & _IN_TRANSACTION:
            dbapi_conn.rollback()

    return engine


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(
        url,
        # the driver's own transaction handling is off; we emit BEGIN ourselves (see _begin)
        connect_args={"isolation_level": None, "check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A write transaction takes the write lock up front (BEGIN IMMEDIATE): upgrading a read lock later
        # fails with SQLITE_BUSY at once instead of waiting on the busy timeout.
        write = conn.get_execution_options().get("errands_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
