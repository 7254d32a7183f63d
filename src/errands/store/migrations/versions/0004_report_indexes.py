"""operators' reads on big tables: the target and queue indexes (of finished rows, where partial indexes exist);
on PostgreSQL the args filter's GIN indexes (over errands_jsonb, which yields NULL for text jsonb refuses) with
statistics on their expressions, and a BRIN index on finished_at

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# as schema.py has it (a migration keeps its own copy: it must not change when the schema does)
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

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


FINISHED_ROWS = "status IN ('completed', 'failed', 'cancelled')"  # one entry per job, at its end


def upgrade() -> None:
    finished = sa.text(FINISHED_ROWS)
    for column in ("target", "queue"):
        op.create_index(
            f"ix_errands_jobs_{column}",
            "errands_jobs",
            [column, "id"],
            postgresql_where=finished,
            sqlite_where=finished,
        )
    dialect = op.get_bind().dialect.name
    if dialect != "mysql":  # (no partial indexes there: it would cost every row)
        failed = sa.text("status = 'failed'")
        columns = ["error_type", "target", "method", "finished_at", "id"]
        op.create_index(
            "ix_errands_jobs_failures", "errands_jobs", columns, postgresql_where=failed, sqlite_where=failed
        )
    if dialect != "postgresql":
        return
    # the status index carries the queue: the stats count unfinished jobs by queue from the index alone
    op.drop_index("ix_errands_jobs_status", table_name="errands_jobs")
    op.create_index(
        "ix_errands_jobs_status",
        "errands_jobs",
        ["status", "id"],
        postgresql_where=sa.text("status <> 'completed'"),
        postgresql_include=["queue"],
    )
    op.execute(ERRANDS_JSONB)
    op.create_index(
        "ix_errands_jobs_args_gin",
        "errands_jobs",
        [sa.text("errands_jsonb(args) jsonb_path_ops")],
        postgresql_using="gin",
        postgresql_where=sa.text(f"args <> '[]' AND {FINISHED_ROWS}"),
    )
    op.create_index(
        "ix_errands_jobs_kwargs_gin",
        "errands_jobs",
        [sa.text("errands_jsonb(kwargs) jsonb_path_ops")],
        postgresql_using="gin",
        postgresql_where=sa.text(f"kwargs <> '{{}}' AND {FINISHED_ROWS}"),
    )
    if (op.get_bind().dialect.server_version_info or (0,)) >= (14,):  # statistics on an expression: 14+
        for column in ("args", "kwargs"):
            op.execute(
                f"CREATE STATISTICS IF NOT EXISTS errands_jobs_{column}_stats "
                f"ON (errands_jsonb({column})) FROM errands_jobs"
            )
    op.create_index("ix_errands_jobs_finished_brin", "errands_jobs", ["finished_at"], postgresql_using="brin")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "mysql":
        op.drop_index("ix_errands_jobs_failures", table_name="errands_jobs")
    if dialect == "postgresql":
        op.drop_index("ix_errands_jobs_status", table_name="errands_jobs")
        op.create_index(
            "ix_errands_jobs_status",
            "errands_jobs",
            ["status", "id"],
            postgresql_where=sa.text("status <> 'completed'"),
        )
        op.execute("DROP STATISTICS IF EXISTS errands_jobs_args_stats, errands_jobs_kwargs_stats")
        for name in ("finished_brin", "kwargs_gin", "args_gin"):
            op.drop_index(f"ix_errands_jobs_{name}", table_name="errands_jobs")
        op.execute(DROP_ERRANDS_JSONB)
    op.drop_index("ix_errands_jobs_queue", table_name="errands_jobs")
    op.drop_index("ix_errands_jobs_target", table_name="errands_jobs")
