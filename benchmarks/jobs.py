"""The benchmark's job: a no-op that records when it ran (the same body as peer-bench's common.record).

The worker's children import it as `benchmarks.jobs:noop` from the repository root (the worker's working
directory). Keep it import-light: every child imports it.
"""

from __future__ import annotations

import os
import threading
import time

RECORDS_ENV = "ERRANDS_BENCH_RECORDS"
TARGET = "benchmarks.jobs:noop"

_fd: int | None = None
_lock = threading.Lock()


def noop(t_enq: float) -> None:
    """Append "<enqueue epoch> <now epoch>\\n" to the file $ERRANDS_BENCH_RECORDS: one O_APPEND write."""
    global _fd
    now = time.time()
    if _fd is None:
        with _lock:
            if _fd is None:
                _fd = os.open(os.environ[RECORDS_ENV], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_fd, b"%.6f %.6f\n" % (t_enq, now))
