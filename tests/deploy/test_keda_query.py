"""The KEDA ScaledObject's query, run on PostgreSQL over jobs that errands itself wrote: it counts the jobs due
now in the queues that are not paused, whatever time zone KEDA's database session has."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from deploy_files import one, render

from errands.client import JobRequest, connect
from errands.settings import Settings
from errands.store.engine import normalize_url

pytestmark = pytest.mark.backends("postgresql")

# Zones on either side of UTC: a query that compared errands' naive UTC times with a bare now() (a timestamptz)
# would see the future as due on one side and due jobs as not yet due on the other.
ZONES = ("UTC", "Pacific/Kiritimati", "America/Los_Angeles")


def keda_query() -> str:
    [trigger] = one(render("base"), "ScaledObject", "errands-worker")["spec"]["triggers"]
    query: str = trigger["metadata"]["query"]
    return query


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    made = sa.create_engine(normalize_url(db_url))
    yield made
    made.dispose()


def count(engine: sa.Engine, query: str, zone: str) -> int:
    with engine.connect() as conn:
        conn.execute(sa.text(f"SET TIME ZONE '{zone}'"))
        return int(conn.execute(sa.text(query)).scalar_one())


@pytest.fixture
def jobs(db_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    """3 due in default, 2 due in the paused queue mail, 1 due in the resumed queue reports, 1 an hour ahead,
    1 running, 1 completed."""
    settings = Settings(
        database_url=db_url,
        allowed_jobs={"examples.jobs:add": []},
        log_file=tmp_path / "job.log",
        error_log_file=tmp_path / "error.log",
    )
    client = connect(settings)
    try:
        add = JobRequest("examples.jobs:add", args=[1, 2])
        for _ in range(3):
            client.enqueue(add)
        for _ in range(2):
            client.enqueue(JobRequest("examples.jobs:add", args=[1, 2], queue="mail"))
        client.enqueue(JobRequest("examples.jobs:add", args=[1, 2], queue="reports"))
        client.enqueue(JobRequest("examples.jobs:add", args=[1, 2], delay=3600))
        running, finished = client.enqueue(add), client.enqueue(add)
    finally:
        client.close()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE errands_jobs SET status = 'running' WHERE id = :id"), {"id": running})
        conn.execute(sa.text("UPDATE errands_jobs SET status = 'completed' WHERE id = :id"), {"id": finished})
        conn.execute(
            sa.text(
                "INSERT INTO errands_queues (name, paused, changed_at, changed_by) VALUES "
                "('mail', true, now(), 'test'), ('reports', false, now(), 'test')"
            )
        )


@pytest.mark.usefixtures("jobs")
@pytest.mark.parametrize("zone", ZONES)
def test_the_query_counts_due_jobs_in_unpaused_queues(engine: sa.Engine, zone: str) -> None:
    assert count(engine, keda_query(), zone) == 4


@pytest.mark.usefixtures("jobs")
def test_a_bare_now_would_depend_on_the_session_time_zone(engine: sa.Engine) -> None:
    """Why the query says now() AT TIME ZONE 'UTC': the same query with a bare now() miscounts."""
    bare = keda_query().replace("(now() AT TIME ZONE 'UTC')", "now()")
    assert bare != keda_query()
    counts = {zone: count(engine, bare, zone) for zone in ZONES}
    assert counts["UTC"] == 4
    assert counts["Pacific/Kiritimati"] == 5  # the job an hour ahead looks 14 hours old
    assert counts["America/Los_Angeles"] == 0  # due jobs look hours ahead


def test_the_query_reads_the_due_index_not_the_whole_table(engine: sa.Engine) -> None:
    """KEDA runs it every 15 s: on a table of mostly finished jobs it must not scan them (the partial indexes
    without completed rows, ix_errands_jobs_status or ix_errands_jobs_due, hold what it counts)."""
    columns = (
        "queue, target, method, args, kwargs, priority, status, attempts, max_attempts, uncharged_attempts, "
        'lost_attempts, attempts_pinned, scheduled_at, created_at, "then", sensitive, cancel_requested'
    )
    values = (
        "'default', 'examples.jobs:add', '', '[]', '{}', 1, STATUS, 1, 3, 0, 0, false, "
        "now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', '[]', false, false"
    )
    with engine.begin() as conn:
        for status, rows in (("'completed'", 50_000), ("'pending'", 100)):
            conn.execute(
                sa.text(
                    f"INSERT INTO errands_jobs ({columns}) "
                    f"SELECT {values.replace('STATUS', status)} FROM generate_series(1, {rows})"
                )
            )
        conn.execute(sa.text("ANALYZE errands_jobs"))
    assert count(engine, keda_query(), "UTC") == 100
    with engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.execute(sa.text(f"EXPLAIN {keda_query()}")))
    assert re.search(r"Index (Only )?Scan using ix_errands_jobs_(status|due) on errands_jobs", plan), plan
    assert "Seq Scan on errands_jobs" not in plan, plan
