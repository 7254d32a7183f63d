from errands.jobs import NewJob
from errands.store import SqlStore


def test_insert_and_get(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("a.B", "x", args=(1, "two")))
    assert store.job_get(job_id).args == (1, "two")
