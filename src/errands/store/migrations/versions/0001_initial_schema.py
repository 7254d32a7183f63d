"""initial schema

Revision ID: 0001
Revises: none
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# the column types of errands.store.schema, frozen as they were at this revision
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "errands_attempts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("error_type", sa.String(length=255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_traceback", LONG_TEXT, nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_errands_attempts")),
        sa.UniqueConstraint("job_id", "number", name=op.f("uq_errands_attempts_job_id_number")),
    )
    op.create_table(
        "errands_jobs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("queue", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=100), nullable=False),
        sa.Column("args", LONG_TEXT, nullable=False),
        sa.Column("kwargs", LONG_TEXT, nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("uncharged_attempts", sa.Integer(), nullable=False),
        sa.Column("lost_attempts", sa.Integer(), nullable=False),
        sa.Column("attempts_pinned", sa.Boolean(), nullable=False),
        sa.Column("scheduled_at", TIMESTAMP, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("timeout_s", sa.Double(), nullable=True),
        sa.Column("error_type", sa.String(length=255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_traceback", LONG_TEXT, nullable=True),
        sa.Column("result", LONG_TEXT, nullable=True),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("then", sa.Text(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_errands_jobs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_errands_jobs")),
    )
    # the due index: partial over pending rows where the backend has partial indexes
    if op.get_bind().dialect.name == "mysql":
        op.create_index(
            "ix_errands_jobs_due_mysql",
            "errands_jobs",
            ["status", sa.literal_column("priority DESC"), "scheduled_at", "id"],
        )
    else:
        op.create_index(
            "ix_errands_jobs_due",
            "errands_jobs",
            [sa.literal_column("priority DESC"), "scheduled_at", "id"],
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
    op.create_index("ix_errands_jobs_lease", "errands_jobs", ["status", "lease_expires_at"])
    op.create_index("ix_errands_jobs_parent", "errands_jobs", ["parent_id"])
    op.create_index("ix_errands_jobs_status", "errands_jobs", ["status", "id"])

    op.create_table(
        "errands_locks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_errands_locks")),
    )
    op.create_table(
        "errands_workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", sa.Text(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_errands_workers")),
    )


def downgrade() -> None:
    op.drop_table("errands_workers")
    op.drop_table("errands_locks")
    op.drop_table("errands_jobs")
    op.drop_table("errands_attempts")
