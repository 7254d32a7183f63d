"""The Store conformance suite: the worker registry and named locks."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from errands.store import SqlStore, WorkerInfo

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def worker(worker_id: str, started: datetime, queues: tuple[str, ...] = ("default",)) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        host=f"host-{worker_id}",
        pid=4242,
        queues=queues,
        concurrency=4,
        started_at=started,
        heartbeat_at=started,
    )


def test_register_and_list(store: SqlStore) -> None:
    assert store.workers_list(60, now=T0) == []
    info = WorkerInfo("w-1", "box.example.org", 31337, ("default", "mail", "é"), 8, T0, at(0.000001))
    store.worker_register(info)
    assert store.workers_list(60, now=at(10)) == [info]


def test_register_with_no_queues(store: SqlStore) -> None:
    info = worker("w-any", T0, queues=())
    store.worker_register(info)
    assert store.workers_list(60, now=T0) == [info]


def test_list_orders_by_start_and_filters_by_heartbeat(store: SqlStore) -> None:
    late = worker("w-late", at(5))
    early = worker("w-early", at(1))
    stale = worker("w-stale", at(-1000))
    for info in (late, early, stale):
        store.worker_register(info)
    assert [w.id for w in store.workers_list(30, now=at(20))] == ["w-early", "w-late"]
    assert [w.id for w in store.workers_list(30, now=at(31.5))] == ["w-late"]  # w-early last beat at T0 + 1
    assert [w.id for w in store.workers_list(10_000, now=at(20))] == ["w-stale", "w-early", "w-late"]


def test_heartbeat_keeps_a_worker_alive(store: SqlStore) -> None:
    info = worker("w-1", T0)
    store.worker_register(info)
    store.worker_heartbeat("w-1", now=at(100.5))
    [listed] = store.workers_list(30, now=at(120))
    assert listed.heartbeat_at == at(100.5)
    assert listed.started_at == T0
    assert [w.id for w in store.workers_list(30, now=at(130.5))] == ["w-1"]  # within alive_within_s, inclusive
    assert store.workers_list(30, now=at(130.6)) == []
    store.worker_heartbeat("w-missing", now=at(1))  # a deregistered worker's late beat is harmless
    assert [w.id for w in store.workers_list(10_000, now=at(130))] == ["w-1"]


def test_deregister(store: SqlStore) -> None:
    store.worker_register(worker("w-1", T0))
    store.worker_register(worker("w-2", T0 + timedelta(microseconds=1)))
    store.worker_deregister("w-1")
    assert [w.id for w in store.workers_list(60, now=T0)] == ["w-2"]
    store.worker_deregister("w-1")  # twice is harmless
    store.worker_deregister("w-2")
    assert store.workers_list(60, now=T0) == []


def test_lock_first_owner_wins_until_it_expires(store: SqlStore) -> None:
    assert store.lock_acquire("rescuer", "a", 30, now=T0) is True
    assert store.lock_acquire("rescuer", "b", 30, now=at(5)) is False
    assert store.lock_acquire("rescuer", "b", 30, now=at(29.9)) is False
    assert store.lock_acquire("rescuer", "b", 30, now=at(30.1)) is True  # a's lease expired at T0 + 30
    assert store.lock_acquire("rescuer", "a", 30, now=at(31)) is False  # now b holds it
    assert store.lock_acquire("rescuer", "b", 30, now=at(31)) is True


def test_lock_same_owner_renews(store: SqlStore) -> None:
    assert store.lock_acquire("rescuer", "a", 30, now=T0) is True
    assert store.lock_acquire("rescuer", "a", 30, now=at(20)) is True  # now until T0 + 50
    assert store.lock_acquire("rescuer", "b", 30, now=at(40)) is False
    assert store.lock_acquire("rescuer", "b", 30, now=at(50.1)) is True


def test_locks_are_independent_by_name(store: SqlStore) -> None:
    assert store.lock_acquire("rescuer", "a", 30, now=T0) is True
    assert store.lock_acquire("pruner", "b", 30, now=T0) is True
    assert store.lock_acquire("rescuer", "b", 30, now=at(1)) is False
    assert store.lock_acquire("pruner", "a", 30, now=at(1)) is False


def test_lock_is_shared_between_stores(store: SqlStore, db_url: str) -> None:
    other = SqlStore(db_url)
    try:
        assert store.lock_acquire("rescuer", "a", 30, now=T0) is True
        assert other.lock_acquire("rescuer", "b", 30, now=at(1)) is False
        assert other.lock_acquire("rescuer", "b", 30, now=at(31)) is True
        assert store.lock_acquire("rescuer", "a", 30, now=at(32)) is False
    finally:
        other.close()


def test_concurrent_acquirers_get_one_winner(store: SqlStore, db_url: str) -> None:
    owners = [f"owner-{n}" for n in range(4)]
    results: dict[str, bool] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(owners))

    def acquire(owner: str) -> None:
        own = SqlStore(db_url)
        try:
            start.wait(timeout=30)
            results[owner] = own.lock_acquire("rescuer", owner, 30, now=T0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=acquire, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    winners = [owner for owner, won in results.items() if won]
    assert len(results) == len(owners)
    assert len(winners) == 1
    # the winner holds it: it renews, the others are refused
    assert store.lock_acquire("rescuer", winners[0], 30, now=at(1)) is True
    assert all(not store.lock_acquire("rescuer", o, 30, now=at(2)) for o in owners if o != winners[0])
