"""errands in ../shared/peer-bench: the peers' exact workload, run by their harness.

    PEERS="/path/to/benchmarks/peer_bench_adapter.py:postgres" ./run_all.sh

Variants choose the database; W job-running processes are one `errands worker --concurrency W` (a
supervising parent on top, as with celery and huey). The harness imports this module in its own process
(enqueue) and the workers' children import it to run `noop` (it is on their PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import sys

import common  # the harness's: RUN_DIR, PG_DSN, VARIANT, record, bin_path

VARIANTS = {
    "postgres": "1 x `errands worker --concurrency W` (W child processes + 1 parent), PostgreSQL",
    "sqlite": "same worker, the embedded SQLite default (WAL) in the run dir",
    "mariadb": "same worker, MariaDB (database peerbench)",
}
PACKAGES = ["errands", "sqlalchemy", "psycopg", "pymysql"]

MYSQL_URL = os.environ.get("PEERBENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/peerbench")
TARGET = "peer_bench_adapter:noop"


def database_url() -> str:
    variant = common.VARIANT or "postgres"
    if variant == "sqlite":
        return f"sqlite:///{os.path.join(common.RUN_DIR, 'errands.db')}"
    if variant == "mariadb":
        return MYSQL_URL
    return common.PG_DSN


def noop(t: float) -> None:
    common.record(t)


def _environment() -> dict[str, str]:
    return {
        "ERRANDS_DATABASE_URL": database_url(),
        "ERRANDS_ALLOWED_JOBS": json.dumps({TARGET: []}),
        "ERRANDS_LOG_FILE": os.path.join(common.RUN_DIR, "job.log"),
        "ERRANDS_ERROR_LOG_FILE": os.path.join(common.RUN_DIR, "error.log"),
        "ERRANDS_CONFIG": os.path.join(common.RUN_DIR, "errands.toml"),
    }


os.environ.update(_environment())
with open(os.environ["ERRANDS_CONFIG"], "a"):
    pass  # an empty config file: the settings come from the environment above

_client = None


def _get_client():  # type: ignore[no-untyped-def]
    global _client
    if _client is None:
        import errands

        _client = errands.connect()
    return _client


def reset() -> None:
    global _client
    if common.VARIANT == "mariadb":
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
        conn.cursor().execute("CREATE DATABASE IF NOT EXISTS peerbench")
        conn.close()
    from errands.store import SqlStore
    from errands.store.migrate import upgrade

    store = SqlStore(database_url())
    upgrade(store)
    with store.engine.begin() as conn:
        # TRUNCATE where there is one (as the procrastinate adapter does): DELETE would leave every earlier
        # run's dead rows in the indexes the next run's claims walk
        wipe = "DELETE FROM" if store.dialect == "sqlite" else "TRUNCATE TABLE"
        for table in ("errands_attempts", "errands_jobs", "errands_workers", "errands_locks"):
            conn.exec_driver_sql(f"{wipe} {table}")
    store.close()
    if _client is not None:
        _client.close()
        _client = None


def enqueue(t: float) -> None:
    from errands.client import JobRequest

    _get_client().enqueue(JobRequest(TARGET, "", args=(t,), queue=common.QUEUE))


def bulk_enqueue(ts: list[float]) -> None:
    from errands.client import JobRequest

    _get_client().enqueue_many([JobRequest(TARGET, "", args=(t,), queue=common.QUEUE) for t in ts])


def worker_commands(workers: int) -> list[list[str]]:
    errands_bin = common.bin_path("errands")
    if not os.path.exists(errands_bin):
        errands_bin = os.path.join(os.path.dirname(sys.executable), "errands")
    return [[errands_bin, "worker", "--queue", common.QUEUE, "--concurrency", str(workers)]]
