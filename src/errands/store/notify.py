"""Wake-ups for idle workers, shared by the drivers' listeners: the channels, and a delivery that survives.

PostgreSQL pushes enqueues and cancels (LISTEN/NOTIFY, postgresql.py); SQLite's WAL file is watched
(sqlite.py); MariaDB has neither: its workers poll. A listener is a thread of its own: a callback that raises,
or a connection that fails, is reported to the caller's error log (on_error) and the thread goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

JOBS_CHANNEL = "errands_jobs"
CANCEL_CHANNEL = "errands_cancel"
# every write that changes a job's status or cancel request (at most one per statement or transaction; the
# payload is empty): the event stream's wake-up (Store.listen_changes)
CHANGES_CHANNEL = "errands_changes"

_log = logging.getLogger("errands.store")


def log_error(message: str) -> None:
    """The default on_error: Python's logging (a worker passes its own error log)."""
    _log.error(message)


def report(on_error: Callable[[str], None], message: str) -> None:
    """Tell on_error, which must not end the listener's thread either."""
    try:
        on_error(message)
    except Exception:  # an error log that fails: nothing better to tell
        _log.exception("listener: on_error failed on %r", message)


def deliver(callback: Callable[[str, str], None], on_error: Callable[[str], None], channel: str, payload: str) -> None:
    """Call back; an exception is reported, not raised: the next notification must still get through."""
    try:
        callback(channel, payload)
    except Exception as exc:
        report(on_error, f"listener: the callback failed on {channel}: {type(exc).__name__}: {exc}")
