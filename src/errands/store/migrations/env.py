"""Alembic environment: errands passes the connection in; migrations never open their own."""

from __future__ import annotations

from alembic import context

from errands.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="errands_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
