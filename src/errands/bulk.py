"""Bulk cancel and retry by filter, of any size: a thread of this process walks the filter's matches newest
first, BATCH ids at a time, acting on each batch in one transaction (the store's batch rules: a job whose
state forbids the action is skipped) and adding its counts to the run's row in errands_bulk_runs, which any
process can read. A run whose process dies stops being renewed; bulk_get then reports it failed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from errands.logs import JobLog
from errands.reports import BulkRun, JobSearch
from errands.search import search_to_json
from errands.store.base import BatchDone, Store

ACTIONS = ("cancel", "retry")
BATCH = 500  # jobs per transaction: short enough for SQLite's one writer, large enough to move fast
TOTAL_CAP = 10_000_000  # the run's total is exact up to this many matches
STALE_AFTER_S = 120.0  # a running run whose row was not renewed for this long has lost its process


@dataclass
class BulkAction:
    """One run's walk: `action` on every job `search` matches, `default_budget` for a retry's fresh budget."""

    store: Store
    log: JobLog
    run: BulkRun
    search: JobSearch
    default_budget: int

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.walk, name=f"errands-bulk-{self.run.id}", daemon=True)
        thread.start()
        return thread

    def walk(self) -> None:
        """Every match, a batch at a time; any failure ends the run failed, with its reason on the row."""
        try:
            total = self.store.jobs_count(self.search, TOTAL_CAP)
            self.store.bulk_run_progress(self.run.id, total=total.value)
            acted, skipped = self._batches()
            self.store.bulk_run_finish(self.run.id)
            self.log.info(None, f"Bulk run {self.run.id} done: {self.run.action} {acted} jobs, {skipped} skipped")
        except Exception as exc:  # a thread has no caller to raise to: the row and the error log say it
            self.log.error(None, f"Bulk run {self.run.id} failed: {type(exc).__name__}: {exc}")
            self._record_failure(f"{type(exc).__name__}: {exc}")

    def _batches(self) -> tuple[int, int]:
        acted = skipped = 0
        cursor = self.search.before_id
        while True:
            ids = self.store.job_ids_search(replace(self.search, before_id=cursor, limit=BATCH))
            if not ids:
                return acted, skipped
            done = self._act(ids)
            self.store.bulk_run_progress(self.run.id, done=done.acted, skipped=done.skipped)
            acted, skipped = acted + done.acted, skipped + done.skipped
            cursor = ids[-1]  # newest first: the next batch is older than this one's oldest

    def _act(self, ids: list[int]) -> BatchDone:
        if self.run.action == "cancel":
            return self.store.jobs_cancel_batch(ids)
        return self.store.jobs_retry_batch(ids, self.default_budget)

    def _record_failure(self, reason: str) -> None:
        try:
            self.store.bulk_run_finish(self.run.id, error=reason)
        except Exception as exc:  # the database is gone too: the run goes stale, and bulk_get reports it failed
            self.log.error(None, f"Bulk run {self.run.id}: its failure could not be recorded: {exc}")


def new_run(store: Store, action: str, search: JobSearch, actor: str) -> tuple[BulkRun, JobSearch]:
    """The run's row, and the search it walks: every match (no page size), from search.before_id down."""
    walked = replace(search, limit=JobSearch.limit)
    return store.bulk_run_insert(action, search_to_json(walked), actor), walked
