"""The migrations produce exactly errands.store.schema, on every backend; open_store checks (SQLite: applies) them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from errands.errors import NotMigrated
from errands.jobs import NewJob
from errands.store import JobFilter, SqlStore, open_store
from errands.store.migrate import head, upgrade
from errands.store.schema import metadata

VERSION_TABLE = "errands_alembic_version"
TABLES = {"errands_jobs", "errands_attempts", "errands_workers", "errands_locks"}


# PostgreSQL's own indexes (migration 0004): GIN over an expression, BRIN; test_reports_indexes.py checks them
POSTGRESQL_ONLY = {
    "ix_errands_jobs_args_gin",
    "ix_errands_jobs_kwargs_gin",
    "ix_errands_jobs_finished_brin",
}
EXPRESSION_INDEXES = {"ix_errands_jobs_args_gin", "ix_errands_jobs_kwargs_gin"}


def _other_dialects_indexes(dialect: str) -> set[str]:
    """The due index exists in two versions chosen with Index.ddl_if (MySQL/MariaDB have no partial indexes),
    and some indexes exist on PostgreSQL only. Alembic's autogenerate ignores ddl_if, so it reports the other
    dialect's versions as missing: skip those (only the metadata side of them; a reflected index of such a
    name would still be reported). Alembic skips expression indexes itself, with a warning: they are left
    out on both sides, and checked apart."""
    other_due = "ix_errands_jobs_due" if dialect == "mysql" else "ix_errands_jobs_due_mysql"
    partial_only = {"ix_errands_jobs_failures"} if dialect == "mysql" else set()  # no partial indexes there
    return {other_due} | partial_only | (EXPRESSION_INDEXES if dialect == "postgresql" else POSTGRESQL_ONLY)


def _diffs(store: SqlStore) -> list[Any]:
    skipped = _other_dialects_indexes(store.dialect)

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "index" and name in EXPRESSION_INDEXES:
            return False
        return not (type_ == "index" and name in skipped and not reflected)

    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "compare_type": True,
                "include_object": include_object,
            },
        )
        return list(compare_metadata(context, metadata))


def test_migrations_match_the_schema(store: SqlStore) -> None:
    assert _diffs(store) == []


def test_the_comparison_would_see_a_difference(store: SqlStore) -> None:
    # guard against a comparison that can't fail: a missing index is reported
    with store.engine.connect() as conn, conn.begin():
        conn.execute(
            sa.text("DROP INDEX ix_errands_jobs_parent" + (" ON errands_jobs" if store.dialect == "mysql" else ""))
        )
    kinds = [diff[0] for diff in _diffs(store)]
    assert kinds == ["add_index"]


def test_the_due_index_is_the_right_one_for_the_backend(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        indexes = {ix["name"]: ix for ix in sa.inspect(conn).get_indexes("errands_jobs")}
    assert set(indexes) == {
        "ix_errands_jobs_status",
        "ix_errands_jobs_lease",
        "ix_errands_jobs_parent",
        "ix_errands_jobs_changed",
        "ix_errands_jobs_due_mysql" if store.dialect == "mysql" else "ix_errands_jobs_due",
        "ix_errands_jobs_target",
        "ix_errands_jobs_queue",
        *(() if store.dialect == "mysql" else ("ix_errands_jobs_failures",)),
        *(POSTGRESQL_ONLY if store.dialect == "postgresql" else ()),
    }
    if store.dialect == "mysql":
        assert indexes["ix_errands_jobs_due_mysql"]["column_names"] == ["status", "priority", "scheduled_at", "id"]
    else:
        due = indexes["ix_errands_jobs_due"]
        assert due["column_names"] == ["priority", "scheduled_at", "id"]
        # Alembic doesn't compare partial-index predicates; check the one this index relies on
        where = due["dialect_options"][f"{store.dialect}_where"]
        assert "pending" in str(where)


def test_lease_parent_and_status_indexes_leave_finished_rows_out(store: SqlStore) -> None:
    """Migration 0002's predicates (Alembic doesn't compare them): a completion touches no index of these."""
    with store.engine.connect() as conn:
        indexes = {ix["name"]: ix for ix in sa.inspect(conn).get_indexes("errands_jobs")}
    wheres = {
        name: str(indexes[name].get("dialect_options", {}).get(f"{store.dialect}_where", ""))
        for name in ("ix_errands_jobs_lease", "ix_errands_jobs_parent", "ix_errands_jobs_status")
    }
    if store.dialect == "mysql":
        assert wheres == dict.fromkeys(wheres, "")  # no partial indexes there
        return
    assert "lease_expires_at IS NOT NULL" in wheres["ix_errands_jobs_lease"]
    assert "parent_id IS NOT NULL" in wheres["ix_errands_jobs_parent"]
    if store.dialect == "postgresql":
        assert "completed" in wheres["ix_errands_jobs_status"]
    else:  # SQLite can't prove status = 'failed' implies status <> 'completed': its listings need it whole
        assert wheres["ix_errands_jobs_status"] == ""


def test_the_revision_open_store_trusts_is_alembics_head() -> None:
    from errands.store import SCHEMA_REVISION

    assert SCHEMA_REVISION == head()


def test_upgrade_is_idempotent(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        job_id = store.job_insert(NewJob("t.A", "", args=(1,)))
        upgrade(store)
        upgrade(store)
        assert store.schema_version() == head()
        assert store.job_get(job_id).args == (1,)
        assert _diffs(store) == []
    finally:
        store.close()


def test_upgrade_an_empty_database(fresh_db_url: str) -> None:
    store = SqlStore(fresh_db_url)
    try:
        assert store.schema_version() is None
        upgrade(store)
        assert store.schema_version() == head()
        with store.engine.connect() as conn:
            assert TABLES | {VERSION_TABLE} <= set(sa.inspect(conn).get_table_names())
    finally:
        store.close()


@pytest.mark.backends("sqlite")
def test_open_store_migrates_an_empty_sqlite_file(fresh_db_url: str) -> None:
    store = open_store(fresh_db_url)
    try:
        assert store.schema_version() == head()
        job_id = store.job_insert(NewJob("t.A", ""))
        assert store.job_get(job_id).target == "t.A"
    finally:
        store.close()
    again = open_store(fresh_db_url)  # already current: nothing to do
    try:
        assert again.schema_version() == head()
        assert [j.id for j in again.jobs_list(JobFilter())] == [job_id]
    finally:
        again.close()


@pytest.mark.backends("sqlite")
def test_open_store_without_migrating_sqlite_refuses_an_empty_file(fresh_db_url: str) -> None:
    with pytest.raises(NotMigrated):
        open_store(fresh_db_url, migrate_sqlite=False)


@pytest.mark.backends("postgresql", "mariadb")
def test_open_store_refuses_an_empty_server_database(fresh_db_url: str) -> None:
    with pytest.raises(NotMigrated):
        open_store(fresh_db_url)
    probe = SqlStore(fresh_db_url)
    try:
        with probe.engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []  # and it created nothing
    finally:
        probe.close()


@pytest.mark.backends("postgresql", "mariadb")
def test_open_store_accepts_a_migrated_server_database(db_url: str) -> None:
    store = open_store(db_url)
    try:
        assert store.schema_version() == head()
    finally:
        store.close()


def test_open_store_refuses_a_database_behind_head(db_url: str) -> None:
    store = SqlStore(db_url)
    try:
        with store.engine.connect() as conn, conn.begin():
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'older'"))
    finally:
        store.close()
    with pytest.raises(NotMigrated):
        open_store(db_url, migrate_sqlite=False)


def test_the_changes_index_serves_changes_since_in_order(store: SqlStore) -> None:
    """Migration 0005: the event stream reads new changes by (changed_at, id), not the whole table."""
    with store.engine.connect() as conn:
        indexes = {ix["name"]: ix for ix in sa.inspect(conn).get_indexes("errands_jobs")}
    assert indexes["ix_errands_jobs_changed"]["column_names"] == ["changed_at", "id"]


def test_migration_0005_goes_down_and_up_again(db_url: str) -> None:
    from alembic import command

    from errands.store.migrate import _config

    store = SqlStore(db_url)
    try:
        job_id = store.job_insert(NewJob("t.A", ""))
        config = _config()
        with store.engine.connect().execution_options(errands_write=True) as conn, conn.begin():
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")
        with store.engine.connect() as conn:
            assert "changed_at" not in {c["name"] for c in sa.inspect(conn).get_columns("errands_jobs")}
        upgrade(store)
        assert _diffs(store) == []
        assert store.job_get(job_id).target == "t.A"  # an old row: changed_at NULL, not in the stream
        assert store.jobs_changed_since(datetime(2000, 1, 1), 10) == []
    finally:
        store.close()
