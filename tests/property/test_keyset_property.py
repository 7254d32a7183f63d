"""A property of keyset paging: over any set of jobs, any filter and any page size, walking the pages of
jobs_search (before_id = the last page's next_before_id) returns each matching job exactly once, newest
first, and nothing else."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from errands.jobs import NewJob
from errands.reports import JobSearch
from errands.store import SqlStore

EXAMPLES = int(os.environ.get("ERRANDS_PROPERTY_EXAMPLES", "25"))
PAGING = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

QUEUES = ("a", "b", "c")
TARGETS = ("app.One", "app.Two")
jobs_strategy = st.lists(
    st.tuples(st.sampled_from(QUEUES), st.sampled_from(TARGETS), st.integers(0, 3)), min_size=0, max_size=40
)
filters = st.fixed_dictionaries(
    {},
    optional={
        "queue": st.sampled_from(QUEUES),
        "target": st.sampled_from(TARGETS),
        "args": st.integers(0, 3),
        "text": st.sampled_from(("one", "TWO", "app.")),
    },
)


@pytest.mark.backends("sqlite", "postgresql")
@PAGING
@given(made=jobs_strategy, where=filters, limit=st.integers(1, 7))
def test_keyset_pages_return_each_match_exactly_once(
    store: SqlStore, made: list[tuple[str, str, int]], where: dict[str, object], limit: int
) -> None:
    with store.engine.begin() as conn:  # the fixture's database serves every example: start each empty
        conn.execute(sa.text("DELETE FROM errands_jobs"))
    ids = store.jobs_insert_many([NewJob(target, "run", args=(n,), queue=queue) for queue, target, n in made])

    def matches(job: tuple[str, str, int]) -> bool:
        queue, target, n = job
        text = str(where.get("text", "")).lower()
        return (
            where.get("queue", queue) == queue
            and where.get("target", target) == target
            and where.get("args", n) == n
            and text in target.lower()
        )

    wanted = sorted((job_id for job_id, job in zip(ids, made, strict=True) if matches(job)), reverse=True)
    search = JobSearch(limit=limit, **where)  # type: ignore[arg-type]
    seen: list[int] = []
    for _ in range(len(made) + 2):  # bounded: a page that never ends would loop forever
        page = store.jobs_search(search)
        assert len(page.jobs) <= limit
        seen.extend(job.id for job in page.jobs)
        if page.next_before_id is None:
            break
        search = JobSearch(limit=limit, before_id=page.next_before_id, **where)  # type: ignore[arg-type]
    assert seen == wanted
