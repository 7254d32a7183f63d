"""PostgreSQL's indexes for operators' reads (migration 0004), which Alembic's comparison can't see: the args
filter's GIN indexes over errands_jsonb and the statistics that let the planner use them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from errands.jobs import JobState, NewJob
from errands.reports import JobSearch
from errands.store import SqlStore
from errands.store.schema import jobs

pytestmark = pytest.mark.backends("postgresql")


def test_the_gin_indexes_cover_errands_jsonb_of_non_empty_arguments(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'errands_jobs'"))
        defs = {name: definition for name, definition in rows}
        statistics = set(conn.execute(sa.text("SELECT stxname FROM pg_statistic_ext")).scalars())
    assert (
        "USING gin (errands_jsonb(args) jsonb_path_ops) WHERE ((args <> '[]'::text) AND"
        in defs["ix_errands_jobs_args_gin"]
    )
    assert (
        "USING gin (errands_jsonb(kwargs) jsonb_path_ops) WHERE ((kwargs <> '{}'::text) AND"
        in defs["ix_errands_jobs_kwargs_gin"]
    )
    assert "'completed'" in defs["ix_errands_jobs_target"] and "'completed'" in defs["ix_errands_jobs_args_gin"]
    assert "USING brin (finished_at)" in defs["ix_errands_jobs_finished_brin"]
    assert {"errands_jobs_args_stats", "errands_jobs_kwargs_stats"} <= statistics


def test_a_rare_value_is_found_through_the_index_a_common_one_by_the_newest_rows(store: SqlStore) -> None:
    """The plan the statistics give (ANALYZE, as autovacuum runs it): without them every value walked the
    primary key, filtering each row through errands_jsonb (a rare one: the whole table)."""
    store.jobs_insert_many([NewJob("app.Jobs", "run", args=(n, "common"), kwargs={"customer": n}) for n in range(4000)])
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("UPDATE errands_jobs SET status = 'running'"))  # (the guard's path to completed)
        conn.execute(sa.text("UPDATE errands_jobs SET status = 'completed'"))
        conn.execute(sa.text("ANALYZE errands_jobs"))

    def plan(args: object) -> str:
        stmt = store._search(JobSearch(args=args, statuses=(JobState.COMPLETED,)), [jobs.c.id], 51)
        with store.engine.connect() as conn:
            sql = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
            return "\n".join(conn.exec_driver_sql("EXPLAIN " + sql).scalars())

    assert "ix_errands_jobs_args_gin" in plan(1234)
    assert "ix_errands_jobs_kwargs_gin" in plan({"customer": 1234})
    assert "pk_errands_jobs" in plan("common")


def test_the_args_filter_survives_a_parallel_scan(store: SqlStore) -> None:
    """errands_jsonb's handler starts a subtransaction, which a parallel worker can't: declared PARALLEL SAFE,
    a parallel scan of a big table failed the search ("cannot start subtransactions during a parallel
    operation", found by benchmarks/big_table.py). Here a parallel plan is forced on a small table."""
    store.jobs_insert_many([NewJob("app.Jobs", "run", args=(n % 50,)) for n in range(3000)])
    search = JobSearch(args=7, statuses=(JobState.PENDING,))
    sql = str(store._search(search, [jobs.c.id], 500).compile(store.engine, compile_kwargs={"literal_binds": True}))
    forced = (
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; "
        "SET max_parallel_workers_per_gather = 2; SET enable_indexscan = off; SET enable_bitmapscan = off"
    )
    with store.engine.connect() as conn:
        conn.exec_driver_sql(forced)
        found = conn.exec_driver_sql(sql).scalars().all()
    assert len(found) == 60
