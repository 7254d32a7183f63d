"""Operators' reads on a big table: 1,000,000 realistic jobs on PostgreSQL, each query's p50/p99.

    .venv/bin/python benchmarks/big_table.py                     # 1M jobs, 50 runs per query
    .venv/bin/python benchmarks/big_table.py --jobs 100000 --runs 20 --keep

A throwaway schema (benchmarks/bench.py's fresh_database) gets `load(url, n)`'s jobs, is VACUUM ANALYZEd (as
autovacuum would have done), and every query of the jobs list, its filters, the counts, stats, queues and
failure groups runs `--runs` times through errands' Client (what the API calls). Targets (issue 11, item 12):
p99 < 50 ms for a page of 50 with or without filters, < 200 ms for the stats. Free disk is checked first: a
run needs ~3 GB (the table, its indexes and WAL); with less, it skips and says why.

`load(url, n)` is the reusable part (the web benchmark loads the same data and times the API's routes): it
fills an already migrated PostgreSQL database's errands_jobs with `n` jobs in chunks of INSERT ... SELECT over
generate_series (the database builds the rows: no round trip per row), spread over 30 days: 93 % completed,
4 % failed (a few error types per target), 1 % cancelled, 1.5 % pending (a tenth of them delayed), 0.5 %
running; 12 targets with Zipf-like weights, 6 queues (one rare), args [customer_id, "region"], and kwargs
{"customer_id": ..., "plan": ...} on a third of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.bench import PG_URL, fresh_database, server_problem  # noqa: E402

NEEDED_BYTES = 3 * 1024**3
CHUNK = 100_000
DAYS = 30

# One chunk of jobs; :first is the chunk's first row number, :n its size, :total the whole load's size. Row k's
# creation time grows with k (ids follow time, as in a real table); its status, target and queue come from
# hashes of k (deterministic: two loads of the same n are the same table).
_LOAD = """
INSERT INTO errands_jobs (
    queue, target, method, args, kwargs, priority, status, attempts, max_attempts, uncharged_attempts,
    lost_attempts, attempts_pinned, scheduled_at, created_at, started_at, finished_at, timeout_s, error_type,
    error_message, error_traceback, result, parent_id, "then", sensitive, cancel_requested, lease_owner,
    lease_token, lease_expires_at
)
SELECT
    (ARRAY['default', 'default', 'default', 'mail', 'mail', 'reports', 'billing', 'webhooks'])[1 + h % 8]
        || CASE WHEN h % 997 = 0 THEN '-rare' ELSE '' END,
    'app.jobs.' || (ARRAY['Mailer', 'Mailer', 'Mailer', 'Mailer', 'Report', 'Report', 'Report', 'Invoice',
        'Invoice', 'Webhook', 'Thumbnail', 'Cleanup', 'Sync', 'Export', 'Import', 'Audit'])[1 + (h / 8) % 16],
    'run',
    '[' || (h / 16) % 50000 || ',"' || (ARRAY['eu', 'us', 'ap'])[1 + h % 3] || '"]',
    CASE WHEN h % 3 = 0 THEN '{"customer_id":' || (h / 16) % 50000 || ',"plan":"'
        || (ARRAY['free', 'pro', 'team'])[1 + (h / 3) % 3] || '"}' ELSE '{}' END,
    1 + h % 3,
    status,
    CASE WHEN status = 'pending' THEN 0 ELSE 1 END, 3, 0, 0, false,
    created + CASE WHEN status = 'pending' AND h % 10 = 0 THEN interval '1 day' ELSE interval '0' END,
    created,
    CASE WHEN status IN ('pending') THEN NULL ELSE created + interval '1 second' END,
    CASE WHEN status IN ('pending', 'running') THEN NULL ELSE created + interval '2 seconds' END,
    NULL,
    CASE WHEN status = 'failed' THEN (ARRAY['TimeoutError', 'KeyError', 'ValueError'])[1 + h % 3] END,
    CASE WHEN status = 'failed' THEN 'customer ' || (h / 16) % 50000 || ' failed: upstream said no' END,
    CASE WHEN status = 'failed' THEN 'Traceback (most recent call last): ...' END,
    CASE WHEN status = 'completed' THEN 'null' END,
    NULL, '[]', false, false,
    CASE WHEN status = 'running' THEN 'worker:bench' END,
    CASE WHEN status = 'running' THEN 'token' END,
    CASE WHEN status = 'running' THEN created + interval '1 hour' END
FROM (
    SELECT k, h, created,
        CASE
            WHEN k > :total - :total / 100 AND h % 3 = 0 THEN 'pending'
            WHEN k > :total - :total / 200 AND h % 3 = 1 THEN 'running'
            WHEN h % 100 < 4 THEN 'failed'
            WHEN h % 100 = 4 THEN 'cancelled'
            WHEN h % 1000 < 5 THEN 'pending'
            ELSE 'completed'
        END AS status
    FROM (
        SELECT k, abs(hashint4(k::int)) AS h,
            (now() AT TIME ZONE 'UTC') - make_interval(secs => (:days * 86400.0) * (:total - k) / :total) AS created
        FROM generate_series(:first, :first + :n - 1) AS k
    ) numbered
) rows
"""


def load(url: str, n: int) -> None:
    """Fill the migrated PostgreSQL database at `url` with `n` jobs (see the module's docstring), then VACUUM
    ANALYZE it. Reusable: the web benchmark loads through it too."""
    import sqlalchemy as sa

    from errands.store.engine import normalize_url

    engine = sa.create_engine(normalize_url(url))
    try:
        for first in range(1, n + 1, CHUNK):
            size = min(CHUNK, n - first + 1)
            with engine.begin() as conn:
                params = {"first": first, "n": size, "total": n, "days": DAYS}
                conn.execute(sa.text(_LOAD), params)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE errands_jobs"))
    finally:
        engine.dispose()


def disk_problem(path: str = tempfile.gettempdir()) -> str | None:
    free = shutil.disk_usage(path).free
    if free < NEEDED_BYTES:
        return f"only {free / 1024**3:.1f} GB free at {path}: 1M jobs need about {NEEDED_BYTES / 1024**3:.0f} GB"
    return None


def timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    fn()  # warm: the first call pays for the plan and the cache
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
    }


def queries(client: Any) -> dict[str, Callable[[], Any]]:
    """What the API runs, by name: each a call of the Client."""
    from errands.jobs import JobState
    from errands.reports import JobSearch

    newest = client.search(JobSearch(limit=1)).jobs[0].id
    old = client.search(JobSearch(limit=1, before_id=newest // 10)).jobs[0].created_at
    search: dict[str, JobSearch] = {
        "page 1": JobSearch(),
        "page 1 of 500": JobSearch(limit=500),
        "deep page (id 1/2)": JobSearch(before_id=newest // 2),
        "deep page (id 1/100)": JobSearch(before_id=newest // 100),
        "status failed": JobSearch(statuses=(JobState.FAILED,)),
        "status pending": JobSearch(statuses=(JobState.PENDING,)),
        "status completed": JobSearch(statuses=(JobState.COMPLETED,)),
        "status failed+cancelled": JobSearch(statuses=(JobState.FAILED, JobState.CANCELLED)),
        "queue mail": JobSearch(queue="mail"),
        "queue rare (0.1 %)": JobSearch(queue="mail-rare"),
        "target Mailer (25 %)": JobSearch(target="app.jobs.Mailer"),
        "target Audit (6 %) + failed": JobSearch(target="app.jobs.Audit", statuses=(JobState.FAILED,)),
        "text in target": JobSearch(text="invoice"),
        "text in error (rare)": JobSearch(text="customer 4242 failed"),
        "args kwargs {customer_id}": JobSearch(args={"customer_id": 4242}),
        "args kwargs {plan} (11 %)": JobSearch(args={"plan": "team"}),
        "args positional 4242": JobSearch(args=4242),
        "args positional 'eu' (33 %)": JobSearch(args="eu"),
        "created in an old day": JobSearch(created_after=old, created_before=old.replace(hour=0) + _days(1)),
        "created before 29 days ago": JobSearch(created_before=datetime.utcnow() - _days(29)),
        "queue + status + target": JobSearch(queue="reports", statuses=(JobState.FAILED,), target="app.jobs.Report"),
    }
    out: dict[str, Callable[[], Any]] = {
        f"search: {name}": (lambda s=s: client.search(s)) for name, s in search.items()
    }
    out["count (cap 10,000): all"] = lambda: client.count(JobSearch())
    out["count (cap 10,000): failed"] = lambda: client.count(JobSearch(statuses=(JobState.FAILED,)))
    out["count (cap 10,000): kwargs {customer_id}"] = lambda: client.count(JobSearch(args={"customer_id": 4242}))
    out["stats"] = client.stats
    out["queues"] = client.queues
    out["failure groups"] = client.failure_groups
    return out


def _days(n: int) -> Any:
    from datetime import timedelta

    return timedelta(days=n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/big-table-<stamp>.json)")
    args = ap.parse_args(argv)
    problem = disk_problem() or server_problem("postgresql")
    if problem:
        print(f"skipped: {problem}")
        return 0
    import errands

    results: dict[str, Any] = {"jobs": args.jobs, "runs": args.runs, "server": PG_URL, "queries": {}}
    with tempfile.TemporaryDirectory() as scratch, fresh_database("postgresql", scratch) as url:
        began = time.monotonic()
        load(url, args.jobs)
        results["load_s"] = round(time.monotonic() - began, 1)
        print(f"loaded {args.jobs:,} jobs in {results['load_s']} s", flush=True)
        settings = errands.load_settings(
            database_url=url,
            log_file=os.path.join(scratch, "job.log"),
            error_log_file=os.path.join(scratch, "error.log"),
        )
        client = errands.connect(settings)
        try:
            for name, fn in queries(client).items():
                figures = timed(fn, args.runs)
                results["queries"][name] = figures
                print(f"{name:48} p50 {figures['p50_ms']:8.2f} ms   p99 {figures['p99_ms']:8.2f} ms", flush=True)
        finally:
            client.close()
    out = args.out or os.path.join(REPO, "benchmarks", "results", f"big-table-{time.strftime('%Y%m%d-%H%M%S')}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as handle:
        json.dump(results, handle, indent=2)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
