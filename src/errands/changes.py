"""ChangeFeed: every job change, once, from repeated reads of Store.jobs_changed_since (the event stream's
source, issue 11 item 6).

A change's changed_at is the database's clock when its transaction (or statement) ran, and it becomes
visible at commit. A transaction that commits after others, with an earlier changed_at (it began first, or
took longer), lands below a reader's last changed_at: a reader that only asked "since my last one" would never
see it. So each poll re-reads from OVERLAP_S before the newest changed_at seen and drops what it returned
already, by (job id, changed_at). A change is missed only by a write transaction that commits more than the
overlap after its changed_at (errands' writes take milliseconds; raise overlap_s for a database that stalls).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from errands.reports import JobChange

OVERLAP_S = 1.0
PAGE = 500  # rows per read; a poll reads pages until one comes back short

ReadChanges = Callable[[datetime, int, int | None], list[JobChange]]  # (since, limit, after_id)


class ChangeFeed:
    """poll() returns the changes not returned before, oldest first; it keeps its own cursor and seen-set.
    Not thread-safe: one reader polls it (the event stream, every 250 ms or when NOTIFY says so)."""

    def __init__(self, read: ReadChanges, since: datetime, *, overlap_s: float = OVERLAP_S, page: int = PAGE) -> None:
        self._read = read
        self._cursor = since  # the newest changed_at returned (or the start)
        self._overlap = timedelta(seconds=overlap_s)
        self._page = page
        self._seen: set[tuple[int, datetime]] = set()  # what was returned with changed_at in the overlap

    @property
    def cursor(self) -> datetime:
        return self._cursor

    def poll(self) -> list[JobChange]:
        new: list[JobChange] = []
        since, after_id = self._cursor - self._overlap, None
        while True:
            page = self._read(since, self._page, after_id)
            for change in page:
                key = (change.job.id, change.changed_at)
                if key not in self._seen:
                    self._seen.add(key)
                    new.append(change)
            if len(page) < self._page:
                break
            since, after_id = page[-1].changed_at, page[-1].job.id
        if new:
            self._cursor = max(self._cursor, max(change.changed_at for change in new))
            horizon = self._cursor - self._overlap
            self._seen = {key for key in self._seen if key[1] >= horizon}
        return new
