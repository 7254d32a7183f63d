"""URL normalisation for the three backends; the engines themselves are the drivers'."""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url

from errands.errors import ConfigError

_DRIVERS = {
    "sqlite": "sqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mysql+pymysql": "mysql+pymysql",
    "mariadb+pymysql": "mysql+pymysql",
}


def normalize_url(raw: str) -> URL:
    """Accept the plain URLs users write (postgresql://, mysql://, mariadb://) and pick our drivers."""
    try:
        url = make_url(raw)
    except Exception:
        raise ConfigError("database_url", f"not a database URL: {_masked(raw)!r}") from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError("database_url", f"unsupported database {url.drivername!r} (sqlite, postgresql, mysql)")
    if driver == "sqlite" and _in_memory(url):
        raise ConfigError(
            "database_url", "an in-memory SQLite database loses every job when the process ends: name a file"
        )
    return url.set(drivername=driver)


def _in_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or database.startswith("file::memory:") or url.query.get("mode") == "memory"


def _masked(raw: str) -> str:
    """A URL SQLAlchemy can't parse can't hide its own password: mask whatever sits between `user:` and the
    last `@` (a password may hold an `@` itself)."""
    return re.sub(r"(://[^:/@?#]*):.*@", r"\1:***@", raw, flags=re.DOTALL)
