"""job changes for the event stream: errands_jobs.changed_at and its index

Every write that changes a job's status or cancel request sets changed_at on the database's clock. Rows
written before this migration keep NULL: filling it in would rewrite every row of a big table, and the
stream reads only changes from now on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"  # re-chained after h/reads' 0004 (the brief said the lead would)
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("errands_jobs", sa.Column("changed_at", TIMESTAMP, nullable=True))
    op.create_index("ix_errands_jobs_changed", "errands_jobs", ["changed_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_errands_jobs_changed", table_name="errands_jobs")
    op.drop_column("errands_jobs", "changed_at")
