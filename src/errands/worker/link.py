"""The busy worker's database round trips, on threads of their own.

While jobs flow, the loop must keep the children fed: a claim or a durable write of outcomes takes
milliseconds (more on a loaded server), and children that wait for it run nothing. So the loop hands its
outcomes and its claims over and goes on dispatching. A writer thread writes the outcomes that queued up
meanwhile (up to WRITE_WINDOW_S) in one transaction; a claimer thread claims, on a connection of its own, so a
claim never waits behind a write (the database works on both at once; on SQLite, which has one writer, they
take turns). Each wakes the loop with what it got; one claim is in flight at a time. A failed round trip
keeps its outcomes for the next try, after a pause that grows with each failure in a row; the loop hears of
the failure through collect().
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from errands.errors import StoreError
from errands.jobs import Job
from errands.store.base import Claim, Finished, Outcome, Store

MAX_WRITE = 1000  # outcomes in one transaction at most
WRITE_WINDOW_S = 0.01  # an outcome waits this long at most for others to share its transaction
MAX_PAUSE_S = 5.0  # the longest pause after a database error before the next try


def pause_after(failures: int, first_s: float) -> float:
    """How long to wait after `failures` failed round trips in a row: doubling from `first_s`, capped."""
    return min(first_s * 2.0 ** min(failures - 1, 10), MAX_PAUSE_S)


@dataclass
class Collected:
    claimed: list[Job] = field(default_factory=list)
    finished: list[tuple[Outcome, Finished]] = field(default_factory=list)  # each outcome written, and how
    errors: list[tuple[StoreError, float]] = field(default_factory=list)  # the failure, the pause after it


class StoreLink:
    def __init__(self, store: Store, wake: Callable[[], None], first_pause_s: float) -> None:
        self._store = store
        # one round trip at a time where the database has one writer (SQLite): they'd only wait for each other
        self._one_at_a_time = threading.Lock() if not store.concurrent_writes else contextlib.nullcontext()
        self._wake = wake
        self._first_pause_s = first_pause_s
        self._cond = threading.Condition()
        self._outcomes: list[Outcome] = []  # to write, oldest first
        self._first_at = 0.0  # when the oldest of them arrived
        self._writing = 0  # outcomes taken by the writer and not written yet
        self._claim: tuple[Claim, int] | None = None  # asked for, not yet started
        self._claiming = False  # asked for or running
        self._out = Collected()
        self._closed = False
        self._failures = {"write": 0, "claim": 0}
        self._threads = [
            threading.Thread(target=self._write_loop, name="errands-writer", daemon=True),
            threading.Thread(target=self._claim_loop, name="errands-claimer", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # the loop's side -------------------------------------------------------------------------------------

    def write(self, outcomes: list[Outcome]) -> None:
        if outcomes:
            with self._cond:
                if not self._outcomes:
                    self._first_at = time.monotonic()
                self._outcomes.extend(outcomes)
                self._cond.notify_all()

    def claim(self, claim: Claim, limit: int) -> bool:
        """Ask for a claim; False if one is in flight already."""
        with self._cond:
            if self._claiming or self._closed:
                return False
            self._claim, self._claiming = (claim, limit), True
            self._cond.notify_all()
            return True

    @property
    def claiming(self) -> bool:
        with self._cond:
            return self._claiming

    @property
    def settled(self) -> bool:
        """Nothing asked for, running, or waiting to be collected."""
        with self._cond:
            out = self._out
            return not (self._claiming or self._outcomes or self._writing or out.claimed or out.finished)

    def collect(self) -> Collected:
        with self._cond:
            out, self._out = self._out, Collected()
            return out

    def close(self) -> list[Outcome]:
        """Finish the round trips in progress and try the queued writes once more; returns the outcomes still
        unwritten (the caller writes them itself). Claimed jobs that arrived meanwhile: collect()."""
        with self._cond:
            self._closed = True
            self._claim = None
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        with self._cond:
            left, self._outcomes = self._outcomes, []
            return left

    # the threads -----------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._outcomes) or self._closed)
                # fewer, larger transactions: less commit work, and on SQLite less waiting for its one writer
                window = self._first_at + WRITE_WINDOW_S - time.monotonic()
                self._cond.wait_for(lambda: self._closed or len(self._outcomes) >= MAX_WRITE, timeout=window)
                if self._closed and (not self._outcomes or self._failures["write"]):
                    return
                batch = self._outcomes[:MAX_WRITE]
                del self._outcomes[:MAX_WRITE]
                self._writing = len(batch)
            try:
                with self._one_at_a_time:
                    finished = self._store.jobs_finish(batch)
            except StoreError as exc:
                with self._cond:
                    self._outcomes[:0] = batch  # first in line for the next try
                    self._writing = 0
                self._failed("write", exc)
                continue
            with self._cond:
                self._failures["write"] = 0
                self._writing = 0
                self._out.finished.extend(zip(batch, finished, strict=True))
            self._wake()

    def _claim_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._claim is not None or self._closed)
                if self._closed:
                    return
                asked, self._claim = self._claim, None
            assert asked is not None
            try:
                with self._one_at_a_time:
                    claimed = self._store.jobs_claim(*asked)
            except StoreError as exc:
                with self._cond:
                    self._claiming = False  # the loop asks again if it still wants jobs
                self._failed("claim", exc)
                continue
            with self._cond:
                self._failures["claim"] = 0
                self._claiming = False
                self._out.claimed.extend(claimed)
            self._wake()

    def _failed(self, what: str, exc: StoreError) -> None:
        """Report, and pause before the next try (a pause that grows with each failure in a row)."""
        with self._cond:
            self._failures[what] += 1
            pause = pause_after(self._failures[what], self._first_pause_s)
            self._out.errors.append((exc, pause))
        self._wake()
        with self._cond:
            self._cond.wait_for(lambda: self._closed, timeout=pause)
