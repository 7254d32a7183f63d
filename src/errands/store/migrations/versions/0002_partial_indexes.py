"""partial indexes: finished and lease-less rows stay out of the lease, parent and (PostgreSQL) status indexes

Every status change of a job is an UPDATE that can't be HOT (status is indexed), so it inserts a new entry in
every index whose predicate the new row version satisfies. A completed job has no lease and mostly no parent:
with these predicates its completion touches the primary key only, and its claim no index but the lease's.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEASED = "lease_expires_at IS NOT NULL"
CHILD = "parent_id IS NOT NULL"
UNFINISHED = "status <> 'completed'"  # PostgreSQL proves `status = 'failed'` implies it; SQLite can't


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "mysql":
        return  # no partial indexes
    _recreate("ix_errands_jobs_lease", ["status", "lease_expires_at"], LEASED)
    _recreate("ix_errands_jobs_parent", ["parent_id"], CHILD)
    if dialect == "postgresql":
        _recreate("ix_errands_jobs_status", ["status", "id"], UNFINISHED)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "mysql":
        return
    _recreate("ix_errands_jobs_lease", ["status", "lease_expires_at"], None)
    _recreate("ix_errands_jobs_parent", ["parent_id"], None)
    if dialect == "postgresql":
        _recreate("ix_errands_jobs_status", ["status", "id"], None)


def _recreate(name: str, columns: list[str], where: str | None) -> None:
    op.drop_index(name, table_name="errands_jobs")
    predicate = None if where is None else sa.text(where)
    op.create_index(name, "errands_jobs", columns, postgresql_where=predicate, sqlite_where=predicate)
