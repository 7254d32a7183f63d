"""Pooled connections the server has closed are replaced before use, at the cost of a poll(), not a round trip.

A database server that restarts, fails over, or ends idle sessions (MariaDB's wait_timeout) closes the
connections our pool holds; the pool learns it only from the next statement, which then fails. A ping before
every transaction (pool_pre_ping) would catch it but costs a round trip each time. An idle connection is owed
nothing, though: PostgreSQL and MariaDB say nothing on a connection between queries unless it is ending (a
FATAL or error packet, then the close). So at checkout, a socket with anything to read (those bytes, or the
close itself) marks the connection as stale; SQLAlchemy's pool then discards it and connects afresh, and the
caller never sees the dead one. Each driver says how to find its connection's socket (postgresql.py,
mysql.py); SQLite has no server.

What this can't see: a server that vanished without closing its sockets (a host that lost power, a network
cut): the next statement then fails, SQLAlchemy invalidates the pool, and the call after it reconnects.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

Stale = Callable[[Any], bool]  # (the DBAPI connection) -> whether it can't be used any more


def replace_stale_on_checkout(engine: Engine, stale: Stale) -> None:
    """Make the engine's pool swap a connection that `stale` finds closed for a new one, at each checkout."""

    @event.listens_for(engine, "checkout")
    def _check(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if stale(dbapi_conn):
            # the pool invalidates this connection and opens another (whose failure reaches the caller)
            raise DisconnectionError("the database closed this idle connection")


def server_spoke(fd: int) -> bool:
    """Whether an idle connection's socket has something to read (data or its end of file), without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # Windows: sockets only, which this is
    return bool(readable)
