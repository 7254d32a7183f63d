"""PostgreSQL LISTEN/NOTIFY: wake idle workers within milliseconds of an enqueue's commit, and running jobs'
workers of a cancel. Other backends have no listener; their workers poll."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

JOBS_CHANNEL = "errands_jobs"
CANCEL_CHANNEL = "errands_cancel"

Callback = Callable[[str, str], None]


def notify(conn: Connection, channel: str, payload: str) -> None:
    """Send within the caller's transaction: PostgreSQL delivers at commit, and folds duplicates in one."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})


class PgListener:
    """A dedicated autocommit connection on its own thread; reconnects on failure (callback gets
    ("reconnect", "") so the worker polls once, in case it missed a notification meanwhile)."""

    def __init__(self, url: URL, callback: Callback) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._callback = callback
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="errands-listen", daemon=True)
        self._ready = threading.Event()

    def start(self, ready_timeout_s: float = 5.0) -> PgListener:
        self._thread.start()
        self._ready.wait(ready_timeout_s)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {JOBS_CHANNEL}")
                    conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                    self._ready.set()
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._callback(note.channel, note.payload)
            except psycopg.Error:
                self._callback("reconnect", "")
                self._stopped.wait(1.0)
