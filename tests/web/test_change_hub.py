"""The event stream's fan-out (errands.web.changes.ChangeHub), on its own: one reader however many streams are
open, none while none is, batches of each job's latest state, wake-ups where the database pushes them.

The feed here is a list the test appends to: what a real feed reads from the database is the store's and
ChangeFeed's business (tests/store); the real thing end to end is in test_events_stream.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from errands.errors import StoreError
from errands.jobs import JobState
from errands.reports import JobChange
from errands.web.changes import ChangeHub, HubTiming, Stoppable
from factories import MOMENT, make_job

FAST = HubTiming(batch_s=0.05, poll_s=0.05, backstop_s=60.0, retry_s=0.05)


def change(job_id: int, status: JobState = JobState.PENDING) -> JobChange:
    return JobChange(make_job(id=job_id, status=status), MOMENT)


class ListFeed:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[JobChange] = []
        self.polls = 0
        self.failing = False

    def add(self, *changes: JobChange) -> None:
        with self.lock:
            self.items.extend(changes)

    def poll(self) -> list[JobChange]:
        with self.lock:
            self.polls += 1
            if self.failing:
                raise StoreError("the database is away")
            taken, self.items = self.items, []
        return taken


class Feeds:
    """The hub's feed factory: counts the feeds it made (one per reader thread started)."""

    def __init__(self) -> None:
        self.feed = ListFeed()
        self.made = 0

    def __call__(self) -> ListFeed:
        self.made += 1
        return self.feed


def no_push(wake: Callable[[], None]) -> Stoppable | None:
    return None


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


async def next_batch(subscription: Any, timeout_s: float = 10.0) -> list[JobChange] | None:
    batch: list[JobChange] | None = await asyncio.wait_for(subscription.next_batch(), timeout_s)
    return batch


def test_many_streams_share_one_reader_and_each_gets_every_change() -> None:
    feeds = Feeds()
    hub = ChangeHub(feeds, no_push, FAST)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        subscriptions = [hub.subscribe(loop) for _ in range(50)]
        for subscription in subscriptions:
            await asyncio.wait_for(subscription.live(), 10)
        feeds.feed.add(change(1), change(2))
        batches = [await next_batch(subscription) for subscription in subscriptions]
        assert all([c.job.id for c in batch or []] == [1, 2] for batch in batches)
        for subscription in subscriptions:
            subscription.close()

    asyncio.run(scenario())
    assert feeds.made == 1  # one reader for fifty streams
    wait_until(lambda: not hub.running)  # and none once they closed
    polls = feeds.feed.polls
    time.sleep(0.3)
    assert feeds.feed.polls == polls  # nothing reads the database while no stream is open


def test_a_stream_opened_after_the_reader_stopped_starts_a_new_one() -> None:
    feeds = Feeds()
    hub = ChangeHub(feeds, no_push, FAST)

    async def one_stream(job_id: int) -> None:
        subscription = hub.subscribe(asyncio.get_running_loop())
        await asyncio.wait_for(subscription.live(), 10)
        feeds.feed.add(change(job_id))
        batch = await next_batch(subscription)
        assert batch is not None and [c.job.id for c in batch] == [job_id]
        subscription.close()

    asyncio.run(one_stream(1))
    wait_until(lambda: not hub.running)
    asyncio.run(one_stream(2))
    assert feeds.made == 2


def test_a_batch_holds_each_jobs_latest_state_in_order() -> None:
    feeds = Feeds()
    hub = ChangeHub(feeds, no_push, HubTiming(batch_s=0.05, poll_s=0.05))

    async def scenario() -> None:
        subscription = hub.subscribe(asyncio.get_running_loop())
        await asyncio.wait_for(subscription.live(), 10)
        subscription.offer([change(1), change(2), change(1, JobState.RUNNING)])
        subscription.offer([change(1, JobState.COMPLETED)])
        batch = await next_batch(subscription)
        assert batch is not None
        assert [(c.job.id, c.job.status) for c in batch] == [(2, JobState.PENDING), (1, JobState.COMPLETED)]
        subscription.close()

    asyncio.run(scenario())


def test_where_the_database_pushes_the_reader_waits_for_a_wake_up() -> None:
    feeds = Feeds()
    wakes: list[Callable[[], None]] = []
    stopped = threading.Event()

    class Listener:
        def stop(self) -> None:
            stopped.set()

    def listen(wake: Callable[[], None]) -> Stoppable:
        wakes.append(wake)
        return Listener()

    hub = ChangeHub(feeds, listen, FAST)  # backstop 60 s: only a wake-up makes a read

    async def scenario() -> None:
        subscription = hub.subscribe(asyncio.get_running_loop())
        await asyncio.wait_for(subscription.live(), 10)
        polls = feeds.feed.polls
        await asyncio.sleep(0.3)
        assert feeds.feed.polls == polls  # no polling while nothing changes
        feeds.feed.add(change(7))
        wakes[0]()
        batch = await next_batch(subscription)
        assert batch is not None and [c.job.id for c in batch] == [7]
        subscription.close()

    asyncio.run(scenario())
    wait_until(stopped.is_set)  # the last stream closed: the listener (its connection) is let go
    wait_until(lambda: not hub.running)


def test_a_failing_database_keeps_streams_open_and_they_resume() -> None:
    feeds = Feeds()
    hub = ChangeHub(feeds, no_push, FAST)

    async def scenario() -> None:
        subscription = hub.subscribe(asyncio.get_running_loop())
        await asyncio.wait_for(subscription.live(), 10)
        feeds.feed.failing = True
        polls = feeds.feed.polls
        await asyncio.to_thread(wait_until, lambda: feeds.feed.polls >= polls + 2)  # still trying
        feeds.feed.add(change(3))
        feeds.feed.failing = False
        batch = await next_batch(subscription)
        assert batch is not None and [c.job.id for c in batch] == [3]
        subscription.close()

    asyncio.run(scenario())


def test_a_stream_goes_live_only_once_the_feed_exists() -> None:
    """The reader's feed takes its cursor when it starts; a stream must not say "live" before that, or a change
    made in between would be missed."""
    feeds = Feeds()
    gate = threading.Event()

    def slow_feed() -> ListFeed:
        gate.wait(10)
        return feeds()

    hub = ChangeHub(slow_feed, no_push, FAST)

    async def scenario() -> None:
        subscription = hub.subscribe(asyncio.get_running_loop())
        live = asyncio.ensure_future(subscription.live())
        await asyncio.sleep(0.2)
        assert not live.done()
        gate.set()
        await asyncio.wait_for(live, 10)
        subscription.close()

    asyncio.run(scenario())


def test_closing_the_hub_ends_the_open_streams() -> None:
    hub = ChangeHub(Feeds(), no_push, FAST)

    async def scenario() -> None:
        subscription = hub.subscribe(asyncio.get_running_loop())
        await asyncio.wait_for(subscription.live(), 10)
        await asyncio.to_thread(hub.close)
        assert await next_batch(subscription) is None
        late = hub.subscribe(asyncio.get_running_loop())  # after close: ends at once, starts nothing
        assert await next_batch(late) is None

    asyncio.run(scenario())
    assert not hub.running


def test_job_json_of_a_batch_event() -> None:
    from errands.web.routes.events import batch_event

    nan_result = replace(make_job(id=4, status=JobState.COMPLETED), result=float("nan"), args=("<script>\ud800",))
    event = batch_event([JobChange(nan_result, MOMENT)])
    assert event.event == "jobs"
    assert event.raw_data is not None and event.raw_data.isascii() and "\n" not in event.raw_data
    assert '"result":"NaN"' in event.raw_data and '"<script>\\ud800"' in event.raw_data
