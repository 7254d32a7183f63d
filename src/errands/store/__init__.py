"""Storage: reached only through the Store protocol (base.py); open one with open_store()."""

from __future__ import annotations

from errands.store.base import Claim, Finished, JobFilter, Outcome, Rescued, RetryBudget, Store, WorkerInfo
from errands.store.sql import SqlStore

__all__ = [
    "Claim",
    "Finished",
    "JobFilter",
    "Outcome",
    "Rescued",
    "RetryBudget",
    "SqlStore",
    "Store",
    "WorkerInfo",
    "open_store",
]


def open_store(url: str, *, migrate_sqlite: bool = True) -> SqlStore:
    """Open the database at `url`, checking (SQLite: applying) the schema."""
    from errands.store.migrate import ensure_current  # Alembic only where a store is opened

    store = SqlStore(url)
    try:
        ensure_current(store, migrate_sqlite=migrate_sqlite)
    except BaseException:
        store.close()
        raise
    return store
