"""Lease renewal on a thread of its own, so a busy job (in a child process) is never taken for a dead one."""

from __future__ import annotations

import threading
from collections.abc import Callable

from errands.store.base import Store


class Heartbeat:
    """Calls `beat` every `interval_s` until stopped; a failing beat is reported, never fatal."""

    def __init__(self, interval_s: float, beat: Callable[[], None], on_error: Callable[[Exception], None]) -> None:
        self._interval_s = interval_s
        self._beat = beat
        self._on_error = on_error
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="errands-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            try:
                self._beat()
            except Exception as exc:
                self._on_error(exc)


def lease_renewer(store: Store, owner: str, held: Callable[[], dict[int, str]], lease_s: float) -> Callable[[], None]:
    def beat() -> None:
        store.leases_renew(owner, held(), lease_s)

    return beat
