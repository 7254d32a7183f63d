"""Which jobs changed since a moment: what the event stream reads (errands_jobs.changed_at, migration 0005).

Every write that changes a job's status or cancel request sets changed_at on the database's clock (the
moment its transaction or statement uses) and, on PostgreSQL, sends one NOTIFY on errands_changes. A
transaction that commits after others with a later changed_at shows up late, below a reader's last
changed_at: a reader re-reads an overlap (errands.changes.ChangeFeed). A mixin of SqlStore.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, select

from errands.reports import JobChange
from errands.store.base import Listener
from errands.store.driver import Driver, OnError
from errands.store.notify import CHANGES_CHANNEL, log_error
from errands.store.rows import job_from_row
from errands.store.schema import jobs


class SqlStoreParts:
    """What a mixin of SqlStore uses of it (declared for the type checker; SqlStore defines them)."""

    if TYPE_CHECKING:
        driver: Driver
        engine: Engine

        def _tx(self, write: bool = True, *, one_statement: bool = False) -> AbstractContextManager[Connection]: ...

        def _now(self, conn: Connection, now: datetime | None) -> datetime: ...


class ChangesMixin(SqlStoreParts):
    def jobs_changed_since(self, since: datetime, limit: int, *, after_id: int | None = None) -> list[JobChange]:
        changed = jobs.c.changed_at >= since
        if after_id is not None:  # keyset: after (since, after_id)
            changed = changed & ((jobs.c.changed_at > since) | (jobs.c.id > after_id))
        stmt = select(jobs).where(changed).order_by(jobs.c.changed_at, jobs.c.id).limit(limit)
        with self._tx(write=False) as conn:
            return [JobChange(job_from_row(row), row.changed_at) for row in conn.execute(stmt)]

    def listen_changes(self, callback: Callable[[str, str], None], on_error: OnError | None = None) -> Listener | None:
        return self.driver.listen(self.engine.url, callback, on_error or log_error, channels=(CHANGES_CHANNEL,))
