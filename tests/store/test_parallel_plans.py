"""Reads under a parallel plan, as PostgreSQL picks on big tables (found by the 1M-job API benchmark: the
kwargs filter answered 503). force_parallel_mode makes every query plan parallel on a tiny table too."""

from __future__ import annotations

import pytest

from errands.jobs import NewJob
from errands.reports import JobSearch
from errands.store import SqlStore

pytestmark = pytest.mark.backends("postgresql")


def _parallel_everywhere(url: str) -> str:
    """The URL with every session planning parallel queries (the setting's name changed in PostgreSQL 16)."""
    store = SqlStore(url)
    try:
        with store.engine.connect() as conn:
            version = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
    finally:
        store.close()
    setting = "debug_parallel_query" if version >= 160000 else "force_parallel_mode"
    return url.replace("?options=", f"?options=-c{setting}%3Don%20", 1)


def test_the_args_filters_work_under_a_parallel_plan(db_url: str) -> None:
    assert "?options=" in db_url
    store = SqlStore(_parallel_everywhere(db_url))
    try:
        job_id = store.job_insert(NewJob("app.tasks.Bill", "", args=(42,), kwargs={"customer_id": 42}))
        assert [job.id for job in store.jobs_search(JobSearch(args={"customer_id": 42})).jobs] == [job_id]
        assert [job.id for job in store.jobs_search(JobSearch(args=42)).jobs] == [job_id]
    finally:
        store.close()
