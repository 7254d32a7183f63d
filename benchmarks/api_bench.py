"""The HTTP API's latency over a big table (issue 11 item 12): p50/p99 per route, on PostgreSQL.

    .venv/bin/python benchmarks/bench.py --only api                 # 1,000,000 jobs (make bench includes it)
    .venv/bin/python benchmarks/bench.py --only api --api-jobs 100000

The table is loaded by benchmarks/big_table.py (the reads' loader: realistic jobs, statuses, queues, targets,
arguments, errors, ANALYZEd). A real `errands serve` (uvicorn, one process) answers; this process sends the
requests one at a time over HTTP on 127.0.0.1 with a viewer's bearer token, round-robin over the routes so a
noisy second spreads over all of them. Each latency is client-side: request sent -> body read. The rate limit
is raised for the bench's identity (its counter is still written per request, as in production).
Targets (issue 11): p99 under 50 ms for a page of 50 jobs, under 200 ms for the stats.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from benchmarks.procs import WorkerProcess

# a 1M-row table with its indexes is ~1.5 GB on PostgreSQL 15 here; the rest is headroom (WAL, the sort of
# ANALYZE, other people's work on the same disk)
DISK_PER_MILLION_JOBS = 3 * 2**30
PAGE = 50
TARGET_PAGE_P99_MS = 50.0
TARGET_STATS_P99_MS = 200.0


@dataclass(frozen=True)
class Samples:
    """Values taken from the loaded table (a failed job in its middle), so that every filter finds rows."""

    target: str
    queue: str
    rare_text: str  # the start of that job's error message ("customer 4242 failed"): a few rows
    common_text: str  # its target's class name, lowercased: a large share of the rows
    args_object: str  # JSON: an object contained in kwargs
    args_value: str  # JSON: a value among the positional args
    created_after: str
    created_before: str
    deep_before: int  # a keyset cursor in the middle of the table


def routes(s: Samples) -> dict[str, str]:
    """name -> path (with its query)."""

    def jobs(**query: Any) -> str:
        return "/api/jobs?" + urllib.parse.urlencode({"limit": PAGE, **query})

    return {
        # what every authenticated request pays (the token's lookup, its rate-limit counter), with no job read
        "baseline: auth/me": "/api/auth/me",
        "jobs: first page": jobs(),
        "jobs: deep page (id 1/2)": jobs(before=s.deep_before),
        "jobs: status=failed": jobs(status="failed"),
        "jobs: status=pending,running": jobs(status="pending,running"),
        "jobs: queue": jobs(queue=s.queue),
        "jobs: target": jobs(target=s.target),
        "jobs: text, common": jobs(q=s.common_text),
        "jobs: text, rare": jobs(q=s.rare_text),
        "jobs: args object (kwargs)": jobs(args=s.args_object),
        "jobs: args value (positional)": jobs(args=s.args_value),
        "jobs: created in an hour": jobs(created_after=s.created_after, created_before=s.created_before),
        "jobs: status+queue+target": jobs(status="failed", queue=s.queue, target=s.target),
        "stats": "/api/stats",
        "queues": "/api/queues",
        "failures": "/api/failures",
        "metrics": "/metrics",
    }


def disk_problem(path: str, jobs: int) -> str | None:
    """Why there is too little free disk for the table, or None."""
    need = DISK_PER_MILLION_JOBS * jobs / 1_000_000
    free = shutil.disk_usage(path).free
    if free < need:
        return f"{free / 2**30:.1f} GiB free under {path}, {need / 2**30:.1f} GiB wanted for {jobs:,} jobs"
    return None


def data_directory(url: str) -> str:
    """Where the server keeps its data, when it is on this machine (else the temp dir: the best guess we have)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from errands.store.engine import normalize_url

    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            where = str(conn.exec_driver_sql("SHOW data_directory").scalar_one())
    except SQLAlchemyError:
        where = ""
    finally:
        engine.dispose()
    return where if where and os.path.isdir(where) else os.environ.get("TMPDIR", "/tmp")


def pick_samples(url: str) -> Samples:
    """The filters' values, read from the table the loader made: a failed job in its middle with both kinds
    of arguments."""
    import sqlalchemy as sa

    from errands.store.engine import normalize_url

    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            low, high = conn.exec_driver_sql("SELECT min(id), max(id) FROM errands_jobs").one()
            middle = (low + high) // 2
            job = conn.exec_driver_sql(
                "SELECT target, queue, error_message, args, kwargs, created_at FROM errands_jobs "
                f"WHERE id >= {middle} AND status = 'failed' AND kwargs <> '{{}}' AND args <> '[]' "
                "ORDER BY id LIMIT 1"
            ).one()
    finally:
        engine.dispose()
    kwargs, args = json.loads(job.kwargs), json.loads(job.args)
    key = next(iter(kwargs))
    return Samples(
        target=job.target,
        queue=job.queue,
        rare_text=" ".join((job.error_message or job.target).split()[:3]),
        common_text=job.target.rsplit(".", 1)[-1].lower(),
        args_object=json.dumps({key: kwargs[key]}),
        args_value=json.dumps(args[0]),
        created_after=(job.created_at - timedelta(hours=1)).isoformat(),
        created_before=job.created_at.isoformat(),
        deep_before=middle,
    )


# the server ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bearer_token(url: str, scratch: str) -> str:
    """A viewer and a read-scoped token of its own (the routes measured need no more)."""
    import errands
    from errands.access import Role, Scope
    from errands.accounts import Accounts

    settings = errands.load_settings(
        database_url=url,
        log_file=os.path.join(scratch, "job.log"),
        error_log_file=os.path.join(scratch, "error.log"),
    )
    accounts = Accounts.open(settings)
    try:
        accounts.create_user("bench", Role.VIEWER, "bench-password-not-secret", actor="bench")
        _, token = accounts.create_token("bench", Scope.READ, expires_days=1, name="bench", actor="bench")
    finally:
        accounts.close()
    return token


def start_serve(env: dict[str, str], scratch: str, cwd: str, timeout: float) -> tuple[WorkerProcess, str]:
    """`errands serve` on a free port; its base URL once it answers HTTP."""
    import httpx

    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "errands")
    argv = [exe] if os.path.exists(exe) else [sys.executable, "-m", "errands"]
    server = WorkerProcess([*argv, "serve", "--port", str(port)], env, cwd, os.path.join(scratch, "serve.log"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if (code := server.exit_code()) is not None:
            raise RuntimeError(f"errands serve exited (code {code}): {server.log_tail(5)!r}")
        try:
            httpx.get(base + "/healthz", timeout=2)  # any answer: the server is up
            return server, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"errands serve did not answer within {timeout:g} s: {server.log_tail(5)!r}")
        time.sleep(0.1)


# the measurement -------------------------------------------------------------------------------------------


def time_routes(base: str, token: str, paths: dict[str, str], rounds: int, warmup: int = 3) -> dict[str, Any]:
    """Round-robin `rounds` times over the routes, one request at a time; p50/p90/p99/max per route (ms)."""
    import httpx

    timings: dict[str, list[float]] = {name: [] for name in paths}
    statuses: dict[str, set[int]] = {name: set() for name in paths}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        for i in range(warmup + rounds):
            for name, path in paths.items():
                began = time.perf_counter()
                response = http.get(path)
                response.read()
                took = (time.perf_counter() - began) * 1000
                statuses[name].add(response.status_code)
                if i >= warmup:
                    timings[name].append(took)
    out: dict[str, Any] = {}
    for name, values in timings.items():
        values.sort()
        out[name] = {
            "path": paths[name],
            "requests": len(values),
            "p50_ms": round(_pct(values, 50), 2),
            "p90_ms": round(_pct(values, 90), 2),
            "p99_ms": round(_pct(values, 99), 2),
            "max_ms": round(values[-1], 2),
        }
        if statuses[name] != {200}:
            out[name]["statuses"] = sorted(statuses[name])
    return out


def _pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1)))]


def verdicts(routes_measured: dict[str, Any]) -> list[str]:
    """The routes over their target, and those that did not answer 200."""
    out = []
    for name, m in routes_measured.items():
        if "statuses" in m:
            out.append(f"{name}: answered {m['statuses']}")
        target = TARGET_STATS_P99_MS if name == "stats" else TARGET_PAGE_P99_MS if name.startswith("jobs") else None
        if target is not None and m["p99_ms"] > target:
            out.append(f"{name}: p99 {m['p99_ms']:.1f} ms over the {target:g} ms target")
    return out


def measure_api(
    url: str,
    scratch: str,
    env: dict[str, str],
    repo: str,
    *,
    jobs: int,
    rounds: int,
    timeout: float,
    load: Callable[[str, int], Any],
) -> dict[str, Any]:
    """Load `jobs` jobs at `url` (a fresh migrated PostgreSQL schema), serve it, time every route."""
    problem = disk_problem(data_directory(url), jobs)
    if problem:
        return {"skipped": f"too little disk: {problem}"}
    began = time.monotonic()
    load(url, jobs)
    load_s = time.monotonic() - began
    samples = pick_samples(url)
    token = bearer_token(url, scratch)
    server, base = start_serve({**env, "ERRANDS_RATE_LIMIT": "1000000"}, scratch, repo, timeout)
    try:
        measured = time_routes(base, token, routes(samples), rounds)
    finally:
        server.stop()
    return {
        "jobs": jobs,
        "rounds": rounds,
        "load_s": round(load_s, 1),
        "samples": samples.__dict__,
        "routes": measured,
        "over_target": verdicts(measured),
    }
