"""The log lines kept in the database (issue 11 item 7): insert, tail, prune, on every backend."""

from __future__ import annotations

from datetime import timedelta

from errands.jobs import AttemptOutcome, JobState, NewJob
from errands.store import Claim, Outcome, SqlStore


def test_tail_is_the_last_lines_of_one_file_oldest_first(store: SqlStore) -> None:
    store.log_lines_insert([("job", 1, f"job line {n}") for n in range(5)])
    store.log_lines_insert([("error", 1, "an error"), ("job", None, "job line 5")])
    tail = store.log_lines_tail("job", 3)
    assert [line.line for line in tail] == ["job line 3", "job line 4", "job line 5"]
    assert [line.file for line in tail] == ["job"] * 3
    assert tail[0].id < tail[1].id < tail[2].id
    assert [line.line for line in store.log_lines_tail("error", 10)] == ["an error"]
    assert store.log_lines_insert([]) is None


def test_a_line_is_stored_as_written_or_made_storable(store: SqlStore) -> None:
    text = "2026-01-01T00:00:00.000000Z INFO job=1 attempt=1 héllo ✓ <script>alert(1)</script> \\udcff"
    store.log_lines_insert([("job", 1, text), ("job", 1, "a NUL \x00 here"), ("job", 1, "x" * 40_000)])
    stored = [line.line for line in store.log_lines_tail("job", 3)]
    assert stored[0] == text
    assert stored[1] == "a NUL \\x00 here"
    assert stored[2].startswith("x" * 1000) and len(stored[2]) <= 16_000


def test_prune_deletes_lines_older_than_the_age(store: SqlStore) -> None:
    t0 = store.now()
    store.log_lines_insert([("job", 1, "old")], now=t0 - timedelta(days=10))
    store.log_lines_insert([("error", 2, "old error")], now=t0 - timedelta(days=8))
    store.log_lines_insert([("job", 3, "new")], now=t0)
    assert store.log_lines_prune(7 * 86400) == 2
    assert [line.line for line in store.log_lines_tail("job", 10)] == ["new"]
    assert store.log_lines_tail("error", 10) == []
    assert store.log_lines_prune(7 * 86400) == 0


def test_prune_walks_in_batches(store: SqlStore) -> None:
    from errands.store import loglines

    t0 = store.now()
    store.log_lines_insert([("job", None, f"{n}") for n in range(loglines.PRUNE_BATCH * 2 + 3)], now=t0)
    assert store.log_lines_prune(60, now=t0 + timedelta(hours=1)) == loglines.PRUNE_BATCH * 2 + 3
    assert store.log_lines_tail("job", 1) == []


def test_pruning_a_job_prunes_its_lines(store: SqlStore) -> None:
    old, kept = store.job_insert(NewJob("t.A", "")), store.job_insert(NewJob("t.A", ""))
    claim = Claim("w1", "t1", 30, "h:1")
    store.jobs_claim(claim, 1)
    store.jobs_finish([Outcome(old, "t1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED)])
    store.log_lines_insert([("job", old, "old's line"), ("error", old, "old's error"), ("job", kept, "kept's")])
    assert store.jobs_prune(60, now=store.now() + timedelta(hours=1)) == 1
    assert [line.line for line in store.log_lines_tail("job", 10)] == ["kept's"]
    assert store.log_lines_tail("error", 10) == []
