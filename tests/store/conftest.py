"""The conformance suite's databases carry a guard: a trigger that refuses any change of a job's state outside
errands.jobs.TRANSITIONS (and any job inserted other than pending). So every test of the suite, on every
backend, is also a check that the store's transitions are a subset of the table: a store call that makes
another fails with StoreError naming the edge. (test_transitions.py shows the guard refusing, and drives the
store through random sequences of calls under it.)
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Connection

from errands.jobs import TRANSITIONS, JobState
from errands.store import SqlStore

GUARD = "errands_t_transitions"
REFUSED = "not in TRANSITIONS"


def allowed_edges() -> list[str]:
    return sorted(f"{src.value}>{dst.value}" for src, targets in TRANSITIONS.items() for dst in targets)


def _sqlite(conn: Connection) -> None:
    edges = ", ".join(f"'{edge}'" for edge in allowed_edges())
    conn.exec_driver_sql(
        f"CREATE TRIGGER {GUARD}_u BEFORE UPDATE OF status ON errands_jobs "
        f"WHEN OLD.status <> NEW.status AND (OLD.status || '>' || NEW.status) NOT IN ({edges}) "
        f"BEGIN SELECT RAISE(ABORT, 'a job state change {REFUSED}'); END"
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER {GUARD}_i BEFORE INSERT ON errands_jobs WHEN NEW.status <> '{JobState.PENDING.value}' "
        f"BEGIN SELECT RAISE(ABORT, 'a job inserted other than pending: {REFUSED}'); END"
    )


def _postgresql(conn: Connection) -> None:
    # the driver takes % for its placeholders: %% is PL/pgSQL's % once it is sent
    edges = ", ".join(f"'{edge}'" for edge in allowed_edges())
    conn.exec_driver_sql(
        f"""CREATE FUNCTION {GUARD}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' AND NEW.status <> '{JobState.PENDING.value}' THEN
                RAISE EXCEPTION 'job %% inserted %%: {REFUSED}', NEW.id, NEW.status;
            END IF;
            IF TG_OP = 'UPDATE' AND OLD.status <> NEW.status
               AND (OLD.status || '>' || NEW.status) <> ALL (ARRAY[{edges}]) THEN
                RAISE EXCEPTION 'job %%: %% -> %% {REFUSED}', NEW.id, OLD.status, NEW.status;
            END IF;
            RETURN NEW;
        END $$"""
    )
    conn.exec_driver_sql(
        f"CREATE TRIGGER {GUARD} BEFORE INSERT OR UPDATE ON errands_jobs FOR EACH ROW EXECUTE FUNCTION {GUARD}()"
    )


def _mysql(conn: Connection) -> None:
    edges = ", ".join(f"'{edge}'" for edge in allowed_edges())
    conn.exec_driver_sql(
        f"""CREATE TRIGGER {GUARD}_u BEFORE UPDATE ON errands_jobs FOR EACH ROW
        BEGIN
            DECLARE message VARCHAR(200);
            IF OLD.status <> NEW.status AND CONCAT(OLD.status, '>', NEW.status) NOT IN ({edges}) THEN
                SET message = CONCAT('job ', NEW.id, ': ', OLD.status, ' -> ', NEW.status, ' {REFUSED}');
                SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = message;
            END IF;
        END"""
    )
    conn.exec_driver_sql(
        f"""CREATE TRIGGER {GUARD}_i BEFORE INSERT ON errands_jobs FOR EACH ROW
        BEGIN
            IF NEW.status <> '{JobState.PENDING.value}' THEN
                SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a job inserted other than pending: {REFUSED}';
            END IF;
        END"""
    )


def install_guard(url: str) -> None:
    store = SqlStore(url)
    try:
        with store.engine.begin() as conn:
            {"sqlite": _sqlite, "postgresql": _postgresql, "mysql": _mysql}[store.dialect](conn)
    finally:
        store.close()


@pytest.fixture
def db_url(db_url: str, fresh_db_url: str) -> str:
    """The migrated database of tests/conftest.py, with the guard. (Asking for fresh_db_url too keeps it in the
    tests' fixture closure, where tests/conftest.py parametrizes it over the backends.)"""
    install_guard(db_url)
    return db_url
