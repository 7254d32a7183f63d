"""Wake-ups for idle workers: PostgreSQL LISTEN/NOTIFY (enqueues and cancels, within milliseconds of the
commit); SQLite, a watch on its WAL file. MariaDB has neither: its workers poll."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

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
        import psycopg  # here: a SQLite or MariaDB process never loads it (~0.13 s of start-up)

        while not self._stopped.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {JOBS_CHANNEL}")
                    conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                    self._ready.set()
                    while not self._stopped.is_set():
                        # a short timeout: stop() waits for it (a worker's exit, a test's teardown)
                        for note in conn.notifies(timeout=0.1):
                            self._callback(note.channel, note.payload)
            except psycopg.Error:
                self._callback("reconnect", "")
                self._stopped.wait(1.0)


class SqliteWalWatcher:
    """SQLite has no NOTIFY, but every commit appends to the database's WAL file: a thread that looks at the
    file's size and time every few milliseconds (a stat, no query) wakes idle workers soon after an enqueue
    commits. Changes by the worker's own writes wake it too, which costs one empty claim."""

    def __init__(self, database: str, callback: Callback, interval_s: float = 0.005) -> None:
        self._wal = database + "-wal"
        self._callback = callback
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="errands-wal-watch", daemon=True)

    def start(self) -> SqliteWalWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self._wal)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _run(self) -> None:
        last = self._stamp()
        while not self._stopped.wait(self._interval_s):
            now = self._stamp()
            if now != last:
                last = now
                self._callback(JOBS_CHANNEL, "")
