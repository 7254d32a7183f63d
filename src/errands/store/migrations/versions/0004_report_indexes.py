"""operators' reads on big tables: the target and queue indexes; on PostgreSQL the args filter's GIN indexes
(over errands_jsonb, which yields NULL for text jsonb refuses) and BRIN indexes on finished_at and created_at

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
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
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


def upgrade() -> None:
    op.create_index("ix_errands_jobs_target", "errands_jobs", ["target", "id"])
    op.create_index("ix_errands_jobs_queue", "errands_jobs", ["queue", "id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(ERRANDS_JSONB)
    op.create_index(
        "ix_errands_jobs_args_gin",
        "errands_jobs",
        [sa.text("errands_jsonb(args) jsonb_path_ops")],
        postgresql_using="gin",
        postgresql_where=sa.text("args <> '[]'"),
    )
    op.create_index(
        "ix_errands_jobs_kwargs_gin",
        "errands_jobs",
        [sa.text("errands_jsonb(kwargs) jsonb_path_ops")],
        postgresql_using="gin",
        postgresql_where=sa.text("kwargs <> '{}'"),
    )
    op.create_index("ix_errands_jobs_finished_brin", "errands_jobs", ["finished_at"], postgresql_using="brin")
    op.create_index("ix_errands_jobs_created_brin", "errands_jobs", ["created_at"], postgresql_using="brin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("created_brin", "finished_brin", "kwargs_gin", "args_gin"):
            op.drop_index(f"ix_errands_jobs_{name}", table_name="errands_jobs")
        op.execute(DROP_ERRANDS_JSONB)
    op.drop_index("ix_errands_jobs_queue", table_name="errands_jobs")
    op.drop_index("ix_errands_jobs_target", table_name="errands_jobs")
