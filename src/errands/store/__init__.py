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


# The newest migration's revision: a database at it needs no Alembic (~0.15 s of imports and parsing at every
# start of a worker or a CLI call). tests/store/test_migrations.py checks it is Alembic's head.
SCHEMA_REVISION = "0005"


def open_store(url: str, *, migrate_sqlite: bool = True) -> Store:
    """Open the database at `url`, checking (SQLite: applying) the schema."""
    store = SqlStore(url)
    try:
        if store.schema_version() == SCHEMA_REVISION:
            return store
        from errands.store.migrate import ensure_current  # Alembic only where a schema is behind

        ensure_current(store, migrate_sqlite=migrate_sqlite)
    except BaseException:
        store.close()
        raise
    return store
