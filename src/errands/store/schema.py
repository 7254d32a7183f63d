"""The tables: the one truth. Alembic migrations must produce exactly this (tests/store/test_migrations.py).

Times are naive UTC with microseconds on every backend. JSON values are stored as text that errands encodes
itself, so every backend stores the same bytes and no driver's JSON handling is involved.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# microseconds on MySQL/MariaDB too (its DATETIME defaults to whole seconds)
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# SQLite only makes INTEGER PRIMARY KEY an alias of its rowid (autoincrement)
Id = BigInteger().with_variant(Integer(), "sqlite")
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

JOB_STATES = ("pending", "running", "completed", "failed", "cancelled")
ATTEMPT_OUTCOMES = ("completed", "failed", "timed_out", "lost", "cancelled", "released")

jobs = Table(
    "errands_jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("queue", String(100), nullable=False),
    Column("target", String(255), nullable=False),
    Column("method", String(100), nullable=False),
    Column("args", LongText, nullable=False),
    Column("kwargs", LongText, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("uncharged_attempts", Integer, nullable=False),
    Column("lost_attempts", Integer, nullable=False),
    Column("attempts_pinned", Boolean, nullable=False),
    Column("scheduled_at", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("started_at", Timestamp, nullable=True),
    Column("finished_at", Timestamp, nullable=True),
    Column("timeout_s", Double, nullable=True),
    Column("error_type", String(255), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("error_traceback", LongText, nullable=True),
    Column("result", LongText, nullable=True),
    Column("parent_id", BigInteger, nullable=True),
    Column("then", Text, nullable=False),
    Column("sensitive", Boolean, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_token", String(64), nullable=True),
    Column("lease_expires_at", Timestamp, nullable=True),
    # when the job's status or cancel request last changed, on the database's clock: the event stream reads the
    # changes since a moment (Store.jobs_changed_since). NULL for rows not written since migration 0005.
    Column("changed_at", Timestamp, nullable=True),
    CheckConstraint("status IN ('pending', 'running', 'completed', 'failed', 'cancelled')", name="status"),
    # Every status change is an UPDATE that can't be HOT (status is indexed), so it adds an entry to each
    # index whose predicate the new row satisfies: the predicates keep completed rows (the bulk of a busy
    # table) out of all but the primary key (migration 0002).
    # "jobs by status" for listings and the dashboard; on PostgreSQL without completed rows (a listing of
    # completed jobs walks the primary key backwards: nearly every row qualifies)
    # (PostgreSQL: with the queue included, the stats count unfinished jobs by queue from the index alone; 0004)
    Index(
        "ix_errands_jobs_status",
        "status",
        "id",
        postgresql_where=text("status <> 'completed'"),
        postgresql_include=["queue"],
    ),
    # the rescuer's scan of expired leases
    Index(
        "ix_errands_jobs_lease",
        "status",
        "lease_expires_at",
        postgresql_where=text("lease_expires_at IS NOT NULL"),
        sqlite_where=text("lease_expires_at IS NOT NULL"),
    ),
    Index(
        "ix_errands_jobs_parent",
        "parent_id",
        postgresql_where=text("parent_id IS NOT NULL"),
        sqlite_where=text("parent_id IS NOT NULL"),
    ),
    # the changes since a moment, in order (the event stream): a read of the new entries only. Every change adds
    # an entry at the index's right edge, completed rows too (migration 0005).
    Index("ix_errands_jobs_changed", "changed_at", "id"),
)


def _not_mysql(
    ddl: Any, target: Any, bind: Any, tables: Any = None, state: Any = None, *, dialect: Dialect, **kw: Any
) -> bool:
    return dialect.name != "mysql"


# "The next due job by priority" (ORDER BY priority DESC, scheduled_at, id): a partial index over pending rows
# where the backend has them (PostgreSQL, SQLite); MariaDB gets the same columns behind status.
Index(
    "ix_errands_jobs_due",
    jobs.c.priority.desc(),
    jobs.c.scheduled_at,
    jobs.c.id,
    postgresql_where=text("status = 'pending'"),
    sqlite_where=text("status = 'pending'"),
).ddl_if(callable_=_not_mysql)
Index("ix_errands_jobs_due_mysql", jobs.c.status, jobs.c.priority.desc(), jobs.c.scheduled_at, jobs.c.id).ddl_if(
    dialect="mysql"
)

attempts = Table(
    "errands_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", BigInteger, nullable=False),
    Column("number", Integer, nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("error_type", String(255), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("error_traceback", LongText, nullable=True),
    Column("worker", String(255), nullable=True),
    UniqueConstraint("job_id", "number"),
)

workers = Table(
    "errands_workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", Text, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("heartbeat_at", Timestamp, nullable=False),
)

# Named leases for work only one process may do at a time (the rescuer).
locks = Table(
    "errands_locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(100), nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)

# --- the HTTP API's state (migration 0003): every web replica shares it through the database -------------------

users = Table(
    "errands_users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("name"),
)

# A session row's id is the SHA-256 of the cookie's secret part: the database never holds a usable cookie.
sessions = Table(
    "errands_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),  # the absolute expiry; the idle one runs from last_seen_at
    Index("ix_errands_sessions_user_id", "user_id"),
)

tokens = Table(
    "errands_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False),
    Column("name", String(100), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),  # SHA-256 of the token: it has 256 random bits, no salt needed
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=True),
    Column("last_used_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
    UniqueConstraint("token_hash"),
    Index("ix_errands_tokens_user_id", "user_id"),
)

# Fixed-window counters: one row per identity (or login account/address) and minute.
rate_counters = Table(
    "errands_rate_counters",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("window_start", Timestamp, primary_key=True),
    Column("hits", Integer, nullable=False),
)

audit = Table(
    "errands_audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("detail", Text, nullable=False),
)

# Small facts the deployment shares: the generated secret key.
meta = Table(
    "errands_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# A queue has a row once an operator paused or resumed it; workers skip paused queues.
queues = Table(
    "errands_queues",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("paused", Boolean, nullable=False),
    Column("changed_at", Timestamp, nullable=False),
    Column("changed_by", String(255), nullable=False),
)

# The job log's and the error log's lines, as written to the files, so the API shows what every worker wrote.
log_lines = Table(
    "errands_log_lines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("file", String(8), nullable=False),  # "job" or "error"
    Column("job_id", BigInteger, nullable=True),
    Column("line", Text, nullable=False),
    Index("ix_errands_log_lines_job_id", "job_id"),
    Index("ix_errands_log_lines_file", "file", "id"),
)

bulk_runs = Table(
    "errands_bulk_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("action", String(16), nullable=False),
    Column("search", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("done", BigInteger, nullable=False),
    Column("skipped", BigInteger, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("heartbeat_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    Column("error", Text, nullable=True),
)

# --- operators' reads on big tables (migration 0004) -------------------------------------------------------------
# Every index costs each enqueue and (a status change can't be HOT) each claim and completion: an index over every
# row version gets three entries per job. These hold finished rows only (where the backend has partial indexes):
# one entry per job, written at its end; a search reads the few unfinished rows through the status index
# (store/reports.py searches the two parts apart). Measured on PostgreSQL, 20,000 jobs' insert, claim and
# completion statements: 1.0 s without the indexes, 3.9 s with them over every row, (see docs/performance.md).
FINISHED_ROWS = "status IN ('completed', 'failed', 'cancelled')"
# the target filter and its pages (newest first); the queue filter, and the queue names by a loose index scan
Index(
    "ix_errands_jobs_target",
    jobs.c.target,
    jobs.c.id,
    postgresql_where=text(FINISHED_ROWS),
    sqlite_where=text(FINISHED_ROWS),
)
Index(
    "ix_errands_jobs_queue",
    jobs.c.queue,
    jobs.c.id,
    postgresql_where=text(FINISHED_ROWS),
    sqlite_where=text(FINISHED_ROWS),
)

# PostgreSQL's jsonb refuses some text errands' JSON may hold (\u0000 and lone surrogates' escapes: hostile input is
# stored as it came; any non-ASCII escape on a database not in UTF8), and an index expression that raised would
# refuse the job's INSERT: errands_jsonb is NULL for such text instead (its job is then simply not found by the
# args filter). The handler costs a subtransaction's set-up per call, a few microseconds, and a subtransaction
# can't start during any parallel operation, the leader's part included: PARALLEL UNSAFE keeps a query that calls
# it out of parallel plans (SAFE and RESTRICTED both failed under one: tests/store/test_parallel_plans.py).
ERRANDS_JSONB = """
CREATE OR REPLACE FUNCTION errands_jsonb(document text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
    RETURN document::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$
"""
DROP_ERRANDS_JSONB = "DROP FUNCTION IF EXISTS errands_jsonb(text)"
# (for metadata.create_all; the migrations create it themselves)
_create_jsonb: Any = DDL(ERRANDS_JSONB)  # type: ignore[no-untyped-call]
_drop_jsonb: Any = DDL(DROP_ERRANDS_JSONB)  # type: ignore[no-untyped-call]
event.listen(jobs, "before_create", _create_jsonb.execute_if(dialect="postgresql"))
event.listen(jobs, "after_drop", _drop_jsonb.execute_if(dialect="postgresql"))

# The args filter's GIN indexes (jsonb_path_ops: containment only, smaller and faster than the default), over
# finished rows as above. Jobs without arguments stay out of them too (the filter adds the same predicate: an
# empty document contains no non-empty one).
Index(
    "ix_errands_jobs_args_gin",
    text("errands_jsonb(args) jsonb_path_ops"),
    postgresql_using="gin",
    postgresql_where=text(f"args <> '[]' AND {FINISHED_ROWS}"),
).ddl_if(dialect="postgresql")
Index(
    "ix_errands_jobs_kwargs_gin",
    text("errands_jsonb(kwargs) jsonb_path_ops"),
    postgresql_using="gin",
    postgresql_where=text(f"kwargs <> '{{}}' AND {FINISHED_ROWS}"),
).ddl_if(dialect="postgresql")
# The planner's estimate for `errands_jsonb(args) @> ...`: without statistics on the expression (a partial
# index's aren't used) it guessed 1 % of the rows for any value, and walked the primary key filtering every row
# through errands_jsonb (~6 us each: 6 s on 1M rows) for a value only a few jobs have. With them (ANALYZE,
# autovacuum), a rare value goes through the GIN index and a common one walks the newest rows. PostgreSQL 14+.
ARGS_STATISTICS = (
    "CREATE STATISTICS IF NOT EXISTS errands_jobs_args_stats ON (errands_jsonb(args)) FROM errands_jobs",
    "CREATE STATISTICS IF NOT EXISTS errands_jobs_kwargs_stats ON (errands_jsonb(kwargs)) FROM errands_jobs",
)
for _statistics in ARGS_STATISTICS:
    _ddl: Any = DDL(_statistics)  # type: ignore[no-untyped-call]
    event.listen(jobs, "after_create", _ddl.execute_if(dialect="postgresql"))

# the failure groups, from the index alone: failed rows only (a drain of jobs that succeed never writes to it)
Index(
    "ix_errands_jobs_failures",
    jobs.c.error_type,
    jobs.c.target,
    jobs.c.method,
    jobs.c.finished_at,
    jobs.c.id,
    postgresql_where=text("status = 'failed'"),
    sqlite_where=text("status = 'failed'"),
).ddl_if(callable_=_not_mysql)
# the per-minute figures of the last hour: BRIN (a few pages, nearly free to maintain); a row's last version is
# written when it finishes, so finished_at follows the table's physical order
Index("ix_errands_jobs_finished_brin", jobs.c.finished_at, postgresql_using="brin").ddl_if(dialect="postgresql")
