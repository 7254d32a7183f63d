"""Alembic, driven from code: `errands migrate`, the SQLite default's migration on first use, the head check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from errands.errors import NotMigrated, StoreError
from errands.store.sql import SqlStore, describe

_SCRIPTS = Path(__file__).with_name("migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade(store: SqlStore) -> None:
    """Apply every migration not yet applied. On SQLite the whole run holds the write lock, so processes
    that start together on a fresh file migrate it once."""
    config = _config()
    try:
        with store.engine.connect().execution_options(errands_write=True) as conn, conn.begin():
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except Exception as exc:
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"migration failed: {describe(exc)}") from exc


def ensure_current(store: SqlStore, *, migrate_sqlite: bool = True) -> None:
    """The SQLite default is migrated on first use; a server database must be migrated on purpose."""
    if store.schema_version() == head():
        return
    if store.driver.migrates_on_open and migrate_sqlite:
        upgrade(store)
        return
    raise NotMigrated(store.safe_url)
