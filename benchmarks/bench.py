#!/usr/bin/env python
"""errands' own benchmark: enqueue, drain, pickup latency, backlog and worker memory, per backend.

    .venv/bin/python benchmarks/bench.py                          # the default sizes, 3 runs (make bench)
    .venv/bin/python benchmarks/bench.py --backends sqlite --quick # tiny sizes, 1 run (the smoke test)
    .venv/bin/python benchmarks/bench.py --full                    # also the 1M-row backlog on PostgreSQL
    .venv/bin/python benchmarks/bench.py --only api                # only the HTTP API over 1M jobs (PostgreSQL)

The job is a no-op that appends "<enqueue epoch> <start epoch>" to a records file (benchmarks/jobs.py, the
body of peer-bench's jobs). Every measurement gets a fresh database: a temp SQLite file, a new schema in the
PostgreSQL database, a new MariaDB database. Workers are real `errands worker` processes (own session,
stopped with SIGTERM then SIGKILL of every process seen in their tree); every wait has a time bound, and a
measurement that runs out of time is recorded as an error, not waited for. Prints a markdown table and
writes JSON (default benchmarks/results/<stamp>.json). Exit code 1 if any measurement failed.
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from benchmarks import report  # noqa: E402
from benchmarks.jobs import RECORDS_ENV, TARGET  # noqa: E402
from benchmarks.procs import Records, WorkerProcess  # noqa: E402

PG_URL = os.environ.get("ERRANDS_BENCH_PG_URL") or os.environ.get(
    "ERRANDS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("ERRANDS_BENCH_MYSQL_URL") or os.environ.get(
    "ERRANDS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"
)
BACKENDS = ("sqlite", "postgresql", "mariadb")
MEASUREMENTS = ("enqueue", "bulk", "drain", "latency", "backlog", "api")
BATCH = 500
SEED_ENV = ("JOB_MAX_RETRIES", "JOB_RETRY_DELAY", "JOB_DEFAULT_PRIORITY")


@dataclass(frozen=True)
class Sizes:
    enqueue: int = 1000  # jobs enqueued one per call
    bulk: int = 5000  # jobs enqueued 500 per call
    drain: int = 5000  # jobs preloaded for each drain
    workers: tuple[int, ...] = (1, 2, 4)
    idle_s: float = 2.0  # the worker idles this long before a latency load starts
    latency: tuple[tuple[str, float, float], ...] = (("idle", 10, 5.0), ("100", 100, 5.0), ("1000", 1000, 2.0))
    backlog: tuple[int, ...] = (10_000, 100_000)  # pending rows (PostgreSQL only)
    backlog_drain: int = 10_000  # the first jobs drained from each backlog
    api_jobs: int = 1_000_000  # rows under the HTTP API's timings (PostgreSQL only; api_bench.py)
    api_rounds: int = 50  # requests per route
    timeout: float = 90.0  # bound on each wait
    latency_wait: float = 60.0  # after the last enqueue, how long the measured jobs may take to run

    def text(self) -> str:
        lat = ", ".join(f"{rate:g} jobs/s for {dur:g} s" for _, rate, dur in self.latency)
        return (
            f"enqueue {self.enqueue:,}, bulk {self.bulk:,}, "
            f"drain N={self.drain:,} with W={'/'.join(map(str, self.workers))}"
            f", latency {lat} (W=2), backlog {'/'.join(f'{b:,}' for b in self.backlog)} rows "
            f"(PostgreSQL, first {self.backlog_drain:,} drained), API over {self.api_jobs:,} jobs "
            f"({self.api_rounds} requests per route, PostgreSQL, first run only), wait bound {self.timeout:g} s"
        )


QUICK = Sizes(
    enqueue=100,
    bulk=1000,
    drain=200,
    idle_s=0.5,
    latency=(("idle", 10, 1.0), ("100", 100, 1.0), ("1000", 1000, 0.5)),
    backlog=(200, 1000),
    backlog_drain=200,
    api_jobs=5000,
    api_rounds=5,
    timeout=60.0,
    latency_wait=30.0,
)


class MeasurementError(Exception):
    """A measurement that could not finish; `partial` holds what it measured before it stopped."""

    def __init__(self, message: str, partial: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.partial = partial or {}


# databases -------------------------------------------------------------------------------------------------


def server_problem(backend: str) -> str | None:
    if backend == "sqlite":
        return None
    import sqlalchemy as sa

    from errands.store.engine import normalize_url

    url = PG_URL if backend == "postgresql" else MYSQL_URL
    try:
        engine = sa.create_engine(normalize_url(url), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"{backend} at {url} is not reachable: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def server_versions(backends: list[str]) -> dict[str, str]:
    import sqlalchemy as sa

    from errands.store.engine import normalize_url

    out = {}
    queries = {
        "postgresql": (PG_URL, "SELECT version(), current_setting('fsync'), current_setting('synchronous_commit')"),
        "mariadb": (MYSQL_URL, "SELECT version(), @@innodb_flush_log_at_trx_commit, @@sync_binlog"),
    }
    for backend in backends:
        if backend == "sqlite":
            import sqlite3

            out[backend] = f"SQLite {sqlite3.sqlite_version} (file in a temp dir, WAL, synchronous=NORMAL)"
            continue
        url, query = queries[backend]
        try:
            engine = sa.create_engine(normalize_url(url), connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                version, a, b = conn.execute(sa.text(query)).one()
            engine.dispose()
            knobs = (
                f"fsync={a}, synchronous_commit={b}"
                if backend == "postgresql"
                else (f"innodb_flush_log_at_trx_commit={a}, sync_binlog={b}")
            )
            out[backend] = f"{str(version).split(' on ')[0]} ({knobs}) at {url}"
        except Exception as exc:
            out[backend] = f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    return out


@contextlib.contextmanager
def fresh_database(backend: str, scratch: str) -> Iterator[str]:
    """A new, migrated database of its own; dropped afterwards."""
    import sqlalchemy as sa

    from errands.store import SqlStore
    from errands.store.engine import normalize_url
    from errands.store.migrate import upgrade

    name = f"errands_bench_{uuid.uuid4().hex[:10]}"
    admin = None
    if backend == "sqlite":
        url = f"sqlite:///{os.path.join(scratch, name + '.db')}"
    else:
        base = PG_URL if backend == "postgresql" else MYSQL_URL
        admin = sa.create_engine(
            normalize_url(base), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 10}
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE {'SCHEMA' if backend == 'postgresql' else 'DATABASE'} {name}"))
        if backend == "postgresql":
            url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{name}"
        else:
            url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        store = SqlStore(url)
        try:
            upgrade(store)
        finally:
            store.close()
        yield url
    finally:
        if admin is not None:
            with admin.connect() as conn:
                if backend == "postgresql":
                    conn.execute(sa.text("SET lock_timeout = '20s'"))
                    conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
                else:
                    conn.execute(sa.text("SET SESSION lock_wait_timeout = 20"))
                    conn.execute(sa.text(f"DROP DATABASE {name}"))
            admin.dispose()
        elif backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(scratch, name + ".db" + suffix))


# one measurement's context -------------------------------------------------------------------------------


@dataclass
class Run:
    """The scratch directory, settings and worker processes of one measurement."""

    backend: str
    url: str
    scratch: str
    sizes: Sizes
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.records_path = os.path.join(self.scratch, f"records-{uuid.uuid4().hex[:8]}.txt")
        self.records = Records(self.records_path)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERRANDS_") and k not in SEED_ENV}
        env.update(
            ERRANDS_CONFIG=os.path.join(self.scratch, "empty.toml"),
            ERRANDS_DATABASE_URL=self.url,
            ERRANDS_ALLOWED_JOBS=json.dumps({TARGET: []}),
            ERRANDS_LOG_FILE=os.path.join(self.scratch, "job.log"),
            ERRANDS_ERROR_LOG_FILE=os.path.join(self.scratch, "error.log"),
            **{RECORDS_ENV: self.records_path},
        )
        return env

    def client(self) -> Any:
        import errands

        settings = errands.load_settings(
            database_url=self.url,
            allowed_jobs={TARGET: []},
            log_file=os.path.join(self.scratch, "job.log"),
            error_log_file=os.path.join(self.scratch, "error.log"),
        )
        return errands.connect(settings)

    def spawn(self, concurrency: int, *, burst: bool) -> WorkerProcess:
        exe = os.path.join(os.path.dirname(sys.executable), "errands")
        argv = [exe] if os.path.exists(exe) else [sys.executable, "-m", "errands"]
        argv += ["worker", "--concurrency", str(concurrency)] + (["--burst"] if burst else [])
        log = os.path.join(self.scratch, f"worker-{len(self.workers)}.log")
        worker = WorkerProcess(argv, self.env(), REPO, log)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


def request(t: float) -> Any:
    from errands.client import JobRequest

    return JobRequest(TARGET, "", args=(t,))


def preload(client: Any, n: int) -> None:
    for i in range(0, n, BATCH):
        client.enqueue_many([request(time.time()) for _ in range(min(BATCH, n - i))])


def pct(sorted_vals: list[float], q: float) -> float:
    return sorted_vals[min(len(sorted_vals) - 1, round(q / 100 * (len(sorted_vals) - 1)))]


# the measurements ------------------------------------------------------------------------------------------


def measure_enqueue(run: Run, bulk: bool) -> dict[str, Any]:
    n = run.sizes.bulk if bulk else run.sizes.enqueue
    client = run.client()
    try:
        if bulk:  # warm up the connection and the code paths (as peer-bench: 100 jobs)
            client.enqueue_many([request(time.time()) for _ in range(100)])
        else:
            for _ in range(100):
                client.enqueue(request(time.time()))
        deadline = time.perf_counter() + run.sizes.timeout
        t0 = time.perf_counter()
        done = 0
        while done < n:
            if bulk:
                k = min(BATCH, n - done)
                client.enqueue_many([request(time.time()) for _ in range(k)])
                done += k
            else:
                client.enqueue(request(time.time()))
                done += 1
            if time.perf_counter() > deadline and done < n:
                dt = time.perf_counter() - t0
                raise MeasurementError(
                    f"timeout: {done} of {n} enqueued in {dt:.1f} s", {"partial_jobs_per_s": round(done / dt)}
                )
        dt = time.perf_counter() - t0
    finally:
        client.close()
    out: dict[str, Any] = {"jobs_per_s": round(n / dt, 1), "seconds": round(dt, 3), "jobs": n}
    if bulk:
        out["batch"] = BATCH
    return out


def measure_drain(run: Run, n: int, concurrency: int) -> dict[str, Any]:
    client = run.client()
    try:
        preload(client, n)
    finally:
        client.close()
    t0 = time.time()
    worker = run.spawn(concurrency, burst=True)
    problem = run.records.wait(lambda k: k >= n, run.sizes.timeout, worker)
    worker.sample()
    done = sorted(r[1] for r in run.records.rows)
    if problem:
        partial = {"partial_jobs_per_s": round(len(done) / (done[-1] - t0))} if done else {}
        raise MeasurementError(f"drain W={concurrency}: {problem}", {**partial, **worker.memory()})
    first, last = done[0], done[n - 1]
    exit_code = worker.wait_exit(15)  # --burst: it exits once nothing is due
    result = {
        "jobs": n,
        "workers": concurrency,
        "jobs_per_s": round(n / (last - t0), 1),
        "steady_jobs_per_s": round((n - 1) / max(last - first, 1e-9), 1),
        "startup_s": round(first - t0, 3),
        "wall_s": round(last - t0, 3),
        **worker.memory(),
    }
    if exit_code != 0:
        raise MeasurementError(
            f"drain W={concurrency}: all jobs ran but the --burst worker "
            + ("did not exit within 15 s" if exit_code is None else f"exited with code {exit_code}"),
            result,
        )
    return result


def measure_latency(run: Run, rate: float, duration: float) -> dict[str, Any]:
    """W=2 worker, warmed up then idle; enqueue at `rate` for `duration` s; enqueue -> start latency."""
    client = run.client()
    try:
        worker = run.spawn(2, burst=False)
        deadline = time.monotonic() + run.sizes.timeout
        while run.records.poll() == 0:  # warm-up: one job every 50 ms until one has run
            if (code := worker.exit_code()) is not None:
                raise MeasurementError(f"the worker exited (code {code}) during warm-up: {worker.log_tail(5)!r}")
            if time.monotonic() > deadline:
                raise MeasurementError(f"timeout: the worker ran no warm-up job within {run.sizes.timeout:g} s")
            client.enqueue(request(time.time()))
            time.sleep(0.05)
        warm = run.records.wait(lambda k: False, run.sizes.idle_s, worker)  # let the warm-up backlog finish
        if warm and not warm.startswith("timeout"):
            raise MeasurementError(warm)
        n = int(rate * duration)
        batched = rate > 200  # one enqueue per call can't pace 1,000/s: enqueue_many of what is due each 10 ms
        start = time.time()
        sent = 0
        while sent < n:
            if time.time() - start > duration + run.sizes.timeout:
                raise MeasurementError(
                    f"timeout: only {sent} of {n} jobs enqueued in {duration + run.sizes.timeout:g} s"
                )
            due = min(n, int((time.time() - start) * rate) + 1)  # job i is due at start + i / rate
            if batched:
                tick = time.time()
                if due > sent:
                    client.enqueue_many([request(time.time())] * (due - sent))
                    sent = due
                time.sleep(max(0.0, tick + 0.01 - time.time()))
            elif due > sent:
                client.enqueue(request(time.time()))
                sent += 1
            else:
                time.sleep(max(0.0, start + sent / rate - time.time()))
        enqueue_s = time.time() - start
    finally:
        client.close()

    def measured() -> list[tuple[float, float]]:
        return [r for r in run.records.rows if r[0] >= start]

    problem = run.records.wait(lambda _: len(measured()) >= n, run.sizes.latency_wait, worker)
    rows = measured()
    lat = sorted((done - enq) * 1000 for enq, done in rows)
    result: dict[str, Any] = {
        "rate": rate,
        "duration_s": duration,
        "jobs": n,
        "enqueue": "enqueue_many of the due jobs every 10 ms" if batched else "one enqueue per job",
        "achieved_rate": round(n / max(enqueue_s, duration), 1),  # exact pacing: the rate
    }
    if lat:
        result.update({f"p{q}_ms": round(pct(lat, q), 2) for q in (50, 95, 99)})
        result["max_ms"] = round(lat[-1], 2)
        # lag as peer-bench: last job run - last enqueue; > 0.5 s hints that the worker could not keep up
        result["lag_s"] = round(max(d for _, d in rows) - max(e for e, _ in rows), 3)
        # the queue grew: the last tenth of the jobs (by enqueue time) waited longer than the first tenth
        by_enq = [done - enq for enq, done in sorted(rows)]
        tenth = max(1, len(by_enq) // 10)
        growth = statistics.median(by_enq[-tenth:]) - statistics.median(by_enq[:tenth])
        result["growth_s"] = round(growth, 3)
        result["saturated"] = growth > 0.5
    if problem:
        raise MeasurementError(f"latency {rate:g}/s: {len(rows)} of {n} ran: {problem}", result)
    return result


def measure_api(run: Run) -> dict[str, Any]:
    from benchmarks import api_bench, big_table

    return api_bench.measure_api(
        run.url,
        run.scratch,
        run.env(),
        REPO,
        jobs=run.sizes.api_jobs,
        rounds=run.sizes.api_rounds,
        timeout=run.sizes.timeout,
        load=big_table.load,
    )


def preload_backlog(run: Run, n: int) -> None:
    """n pending rows, fast: one batch through enqueue_many, the rest copied from its first row in SQL
    (INSERT ... SELECT generate_series); then ANALYZE, as autovacuum would have done on a real backlog."""
    import sqlalchemy as sa

    client = run.client()
    try:
        seed = client.enqueue_many([request(time.time()) for _ in range(min(BATCH, n))])
        engine = client._store.engine  # beneath the API: a benchmark set-up
        if n > len(seed):
            cols = [c["name"] for c in sa.inspect(engine).get_columns("errands_jobs") if c["name"] != "id"]
            col_list = ", ".join(f'"{c}"' for c in cols)
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        f"INSERT INTO errands_jobs ({col_list}) SELECT {col_list} FROM errands_jobs "
                        "CROSS JOIN generate_series(1, :k) WHERE id = :seed"
                    ),
                    {"k": n - len(seed), "seed": seed[0]},
                )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE errands_jobs"))
            pending = conn.execute(sa.text("SELECT count(*) FROM errands_jobs WHERE status = 'pending'")).scalar()
        if pending != n:
            raise MeasurementError(f"backlog preload: {pending} pending rows, wanted {n}")
    finally:
        client.close()


def measure_backlog(run: Run, size: int) -> dict[str, Any]:
    k = min(run.sizes.backlog_drain, size)
    preload_backlog(run, size)
    t0 = time.time()
    worker = run.spawn(2, burst=False)
    problem = run.records.wait(lambda c: c >= k, run.sizes.timeout, worker)
    done = sorted(r[1] for r in run.records.rows)
    if problem:
        partial = {"partial_jobs_per_s": round(len(done) / (done[-1] - t0))} if done else {}
        raise MeasurementError(f"backlog {size}: {problem}", partial)
    first, last = done[0], done[k - 1]
    return {
        "pending": size,
        "drained": k,
        "jobs_per_s": round(k / (last - t0), 1),
        "steady_jobs_per_s": round((k - 1) / max(last - first, 1e-9), 1),
        "startup_s": round(first - t0, 3),
    }


# orchestration ---------------------------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {}
    if ok:
        for key, value in ok[0].items():
            if isinstance(value, bool):  # a flag: the majority of the runs
                out[key] = sum(bool(r.get(key)) for r in ok) * 2 > len(ok)
            elif isinstance(value, int | float):
                vals = [r[key] for r in ok if isinstance(r.get(key), int | float)]
                med = statistics.median(vals)
                out[key] = round(med, 3)
                if len(vals) > 1 and med:
                    out.setdefault("spread", {})[key] = round((max(vals) - min(vals)) / med, 3)
            elif key not in out:
                out[key] = value
    else:
        out["error"] = runs[0]["error"]
        partials = [r["partial_jobs_per_s"] for r in runs if r.get("partial_jobs_per_s")]
        if partials:
            out["partial_jobs_per_s"] = statistics.median(partials)
    errors = len(runs) - len(ok)
    if errors:
        out["errors"] = errors
    out["runs"] = runs
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes) -> None:
        self.args = args
        self.sizes = sizes
        self.deadline = time.monotonic() + args.budget if args.budget > 0 else float("inf")
        self.skipped: list[str] = []
        self.errors: list[str] = []
        self.raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.active: Run | None = None

    def one(self, backend: str, key: str, fn: Callable[[Run], dict[str, Any]]) -> None:
        """One measurement in a fresh database and scratch directory; errors are recorded, not raised."""
        started = time.monotonic()
        if started > self.deadline:  # out of time: later runs of this measurement are dropped, not failed
            self.skipped.append(f"{backend} {key} (run {len(self.raw.get(backend, {}).get(key, [])) + 1})")
            print(f"  {backend:10} {key:14} skipped: over the --budget", file=sys.stderr, flush=True)
            return
        scratch = tempfile.mkdtemp(prefix=f"errands-bench-{backend}-{key}-")
        open(os.path.join(scratch, "empty.toml"), "w").close()
        os.environ["ERRANDS_CONFIG"] = os.path.join(scratch, "empty.toml")  # this process's settings too
        result: dict[str, Any]
        try:
            with fresh_database(backend, scratch) as url:
                run = self.active = Run(backend, url, scratch, self.sizes)
                try:
                    result = fn(run)
                finally:
                    run.stop_all()
                    self.active = None
        except BaseException as exc:
            if not isinstance(exc, Exception):  # interrupted (SIGTERM, Ctrl-C): workers are stopped already
                if not self.args.keep:
                    shutil.rmtree(scratch, ignore_errors=True)
                raise
            detail = str(exc) if isinstance(exc, MeasurementError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, MeasurementError):
                traceback.print_exc()
            result = {"error": detail, **getattr(exc, "partial", {}), "run_dir": scratch}
            self.errors.append(f"{backend} {key}: {detail} (logs kept in {scratch})")
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        if self.args.keep:
            result["run_dir"] = scratch
        elif "error" not in result:
            shutil.rmtree(scratch, ignore_errors=True)
        self.raw.setdefault(backend, {}).setdefault(key, []).append(result)
        status = f"ERROR {result['error']}" if "error" in result else _brief(result)
        print(f"  {backend:10} {key:14} {status}  [{result['elapsed_s']:g} s]", file=sys.stderr, flush=True)

    def run_backend(self, backend: str) -> None:
        s, only = self.sizes, self.args.only
        if "enqueue" in only:
            self.one(backend, "enqueue", lambda r: measure_enqueue(r, bulk=False))
        if "bulk" in only:
            self.one(backend, "bulk", lambda r: measure_enqueue(r, bulk=True))
        if "drain" in only:
            for w in s.workers:
                self.one(backend, f"drain_w{w}", functools.partial(measure_drain, n=s.drain, concurrency=w))
        if "latency" in only:
            for name, rate, duration in s.latency:
                self.one(backend, f"latency_{name}", functools.partial(measure_latency, rate=rate, duration=duration))
        if "backlog" in only and backend == "postgresql":
            for size in s.backlog:
                self.one(backend, f"backlog_{size}", functools.partial(measure_backlog, size=size))
        # the API once per bench, not once per run: loading a million jobs takes minutes
        if "api" in only and backend == "postgresql" and "api" not in self.raw.get(backend, {}):
            self.one(backend, "api", measure_api)

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for backend, keys in self.raw.items():
            res: dict[str, Any] = {}
            backlog: dict[str, Any] = {}
            for key, runs in keys.items():
                if key.startswith("backlog_"):
                    backlog[key.removeprefix("backlog_")] = median_of(runs)
                else:
                    res[key] = median_of(runs)
            if "drain_w2" in keys:
                mem = median_of(
                    [
                        {"error": r["error"]} if "error" in r else {k: r[k] for k in ("rss_mb", "pss_mb", "procs")}
                        for r in keys["drain_w2"]
                    ]
                )
                mem.pop("runs", None)
                res["memory_w2"] = mem
            if backlog:
                base = next(iter(backlog.values()))
                for entry in backlog.values():
                    for k, name in (("jobs_per_s", "ratio"), ("steady_jobs_per_s", "steady_ratio")):
                        if entry.get(k) and base.get(k):
                            entry[name] = round(entry[k] / base[k], 3)
                res["backlog"] = backlog
            out[backend] = res
        return out


def _brief(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"skipped: {r['skipped']}"
    if "routes" in r:
        worst = max(r["routes"].items(), key=lambda item: item[1]["p99_ms"])
        over = f"; over target: {len(r['over_target'])}" if r["over_target"] else ""
        return (
            f"{len(r['routes'])} routes over {r['jobs']:,} jobs, worst p99 {worst[1]['p99_ms']} ms ({worst[0]}){over}"
        )
    if "p50_ms" in r:
        return f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, lag {r['lag_s']} s, rate {r['achieved_rate']}/s"
    text = f"{r['jobs_per_s']:,.0f} jobs/s"
    if "steady_jobs_per_s" in r:
        text += f" (steady {r['steady_jobs_per_s']:,.0f})"
    if "pss_mb" in r:
        text += f", PSS {r['pss_mb']} MB"
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgresql,mariadb")
    ap.add_argument("--runs", type=int, default=None, help="runs per measurement, medians reported (default 3)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and one run (the smoke test)")
    ap.add_argument("--full", action="store_true", help="add the 1,000,000-row backlog on PostgreSQL")
    ap.add_argument("--only", default=",".join(MEASUREMENTS), help=f"a subset of {','.join(MEASUREMENTS)}")
    ap.add_argument("--drain-jobs", type=int, default=None, help="N for the drains (default 5000)")
    ap.add_argument("--api-jobs", type=int, default=None, help="rows under the API's timings (default 1000000)")
    ap.add_argument("--timeout", type=float, default=None, help="bound on each wait, seconds (default 90)")
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds; once spent, no new measurement starts (default 900, quick 600; 0 = no budget)",
    )
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<stamp>.json)")
    ap.add_argument("--keep", action="store_true", help="keep every scratch dir (records, worker logs)")
    args = ap.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.only = [m.strip() for m in args.only.split(",") if m.strip()]
    for name, given, allowed in (("backend", args.backends, BACKENDS), ("measurement", args.only, MEASUREMENTS)):
        unknown = set(given) - set(allowed)
        if unknown:
            ap.error(f"unknown {name}(s) {sorted(unknown)}; have {list(allowed)}")
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.budget is None:
        args.budget = 600 if args.quick else 900
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.full:
        sizes = dataclasses.replace(sizes, backlog=(*sizes.backlog, 1_000_000))
    if args.drain_jobs:
        sizes = dataclasses.replace(sizes, drain=args.drain_jobs)
    if args.api_jobs:
        sizes = dataclasses.replace(sizes, api_jobs=args.api_jobs)
    if args.timeout:
        sizes = dataclasses.replace(sizes, timeout=args.timeout)

    def _bail(signum: int, _frame: Any) -> None:  # SIGTERM/SIGHUP/SIGINT: raise, so every finally runs
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        raise SystemExit(f"terminated by signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _bail)

    started = time.monotonic()
    bench = Bench(args, sizes)
    backends = []
    unreachable: dict[str, str] = {}
    for backend in args.backends:
        problem = server_problem(backend)
        if problem:
            unreachable[backend] = problem
            bench.errors.append(problem)
            print(f"skipping {backend}: {problem}", file=sys.stderr)
        else:
            backends.append(backend)
    machine = report.machine(REPO, server_versions(args.backends))
    print(f"errands bench: {', '.join(backends) or 'no backend'}; {args.runs} run(s); {sizes.text()}", file=sys.stderr)
    try:
        for i in range(args.runs):  # runs interleave, so a noisy minute spreads over every measurement
            print(f"run {i + 1} of {args.runs}", file=sys.stderr, flush=True)
            for backend in backends:
                bench.run_backend(backend)
    except (SystemExit, KeyboardInterrupt) as exc:  # report what was measured before the interruption
        bench.errors.append(f"interrupted: {exc or 'Ctrl-C'}")
    finally:
        if bench.active is not None:
            bench.active.stop_all()
    results = bench.results()
    for backend, problem in unreachable.items():
        results[backend] = {"error": problem}
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["errands_git_at_end"] = report.git_state(REPO)
    machine["errands_source_digest_at_end"] = report.source_digest(REPO)
    machine["source_changed_during_run"] = machine["errands_source_digest_at_end"] != machine["errands_source_digest"]
    doc: dict[str, Any] = {
        "machine": machine,
        "runs": args.runs,
        "quick": args.quick,
        "sizes": dataclasses.asdict(sizes),
        "sizes_text": sizes.text(),
        "elapsed_s": round(time.monotonic() - started, 1),
        "results": {b: results.get(b, {}) for b in args.backends},
        "errors": bench.errors,
        "skipped_over_budget": bench.skipped,
    }
    out = args.out or os.path.join(HERE, "results", time.strftime("%Y%m%d-%H%M%S") + ".json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(report.markdown(doc))
    skipped = f", {len(bench.skipped)} measurement run(s) skipped over the budget" if bench.skipped else ""
    print(f"\n{len(bench.errors)} error(s){skipped}; took {doc['elapsed_s']:g} s; JSON: {out}", file=sys.stderr)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
