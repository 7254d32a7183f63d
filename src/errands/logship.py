"""The log's lines to the database: a LogSink (errands.logs) that ships them in batches on a daemon thread.

Every process that writes log lines ships them (the Client of connect(), a worker, run-job, a detached
process), so the API shows what workers on other machines wrote. A batch goes out once SHIP_EVERY_S passed
since its first line or once it holds SHIP_LINES lines: one INSERT per batch. Lines sent after close() go out
at once, on the caller's thread. As with the files, a log is never a reason for anything to fail: a batch the
database refuses is dropped with one line on stderr (again only after a batch went through), and while the
database is away at most MAX_PENDING lines wait (the oldest are dropped first).
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
import weakref

from errands.logs import LogRow
from errands.store.base import Store

SHIP_EVERY_S = 0.25
SHIP_LINES = 1000
MAX_PENDING = 100_000

_open: weakref.WeakSet[LogShipper] = weakref.WeakSet()  # delivered at exit, when the owner didn't close them


class LogShipper:
    def __init__(self, store: Store, *, every_s: float = SHIP_EVERY_S, lines: int = SHIP_LINES) -> None:
        self._store = store
        self._every_s = every_s
        self._lines = lines
        self._cond = threading.Condition()
        self._pending: list[LogRow] = []
        self._first_at = 0.0  # when the oldest pending line arrived
        self._closed = False
        self._failing = False  # a failure was reported; the next success re-arms the report
        self._dropped = 0  # lines dropped while MAX_PENDING were waiting
        self._thread = threading.Thread(target=self._run, name="errands-log-ship", daemon=True)
        self._thread.start()
        _open.add(self)

    def send(self, rows: list[LogRow]) -> None:
        if not rows:
            return
        with self._cond:
            if self._closed:
                self._ship(rows)  # (rare: a line after close; the caller's thread)
                return
            if not self._pending:
                self._first_at = time.monotonic()
                self._cond.notify()  # the thread starts the batch's clock
            self._pending.extend(rows)
            if len(self._pending) > MAX_PENDING:
                over = len(self._pending) - MAX_PENDING
                self._dropped += over
                del self._pending[:over]
            if len(self._pending) >= self._lines:
                self._cond.notify()

    def close(self) -> None:
        """Ship what is pending (on the thread, which then ends) and wait for it."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join()
        _open.discard(self)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closed)
                due = self._first_at + self._every_s - time.monotonic()
                self._cond.wait_for(lambda: self._closed or len(self._pending) >= self._lines, timeout=due)
                batch, self._pending = self._pending, []
                closed = self._closed
            self._ship(batch)
            if closed:
                return

    def _ship(self, batch: list[LogRow]) -> None:
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            self._report(f"{dropped} lines were dropped while the database was unreachable")
        for start in range(0, len(batch), self._lines):
            try:
                self._store.log_lines_insert(batch[start : start + self._lines])
                self._failing = False
            except Exception as exc:  # StoreError, or anything else: a log line never fails its writer
                self._report(f"{len(batch) - start} lines not stored: {exc}")
                return  # the rest of the batch with it: the database is failing

    def _report(self, message: str) -> None:
        if not self._failing:
            self._failing = True
            print(f"errands: the log's lines in the database: {message}; they stay in the files", file=sys.stderr)


@atexit.register
def _deliver_at_exit() -> None:
    """A process that never closed its Client (errands.enqueue() in a script) still ships its last lines."""
    for shipper in list(_open):
        shipper.close()
