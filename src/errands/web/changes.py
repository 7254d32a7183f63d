"""The event stream's one feed per process: a background thread reads job changes and fans them out to every
open stream (GET /api/events), so a thousand open dashboards cost one reader, not a thousand.

The thread runs only while a stream is open: with none, it stops and lets go of its listener, so an idle process
holds no database connection for the stream. On PostgreSQL it sleeps until LISTEN on errands_changes wakes it
(and reads anyway every `backstop_s`, in case a notification was lost while its connection was being remade);
elsewhere it reads every `poll_s`. Reads are at most one per `batch_s`: whatever changed in between goes out
as one batch. A stream keeps only the latest state of each job it has not sent yet, so a slow client costs at
most one entry per changed job, never a growing queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from errands.errors import ErrandsError
from errands.reports import JobChange

log = logging.getLogger("errands.web")


class Feed(Protocol):
    """Reads the changes after those it returned before (a cursor of its own)."""

    def poll(self) -> list[JobChange]: ...


class Stoppable(Protocol):
    def stop(self) -> None: ...


# (wake) -> a listener that calls wake() after commits that changed jobs, or None where the caller must poll
Listen = Callable[[Callable[[], None]], Stoppable | None]


@dataclass(frozen=True)
class HubTiming:
    batch_s: float = 0.25  # at most one read, and one batch per stream, this often
    poll_s: float = 0.25  # where nothing pushes: a read this often while a stream is open
    backstop_s: float = 5.0  # where LISTEN pushes: a read this often anyway
    retry_s: float = 1.0  # after the database failed a read


class Subscription:
    """One open stream: the latest state of each job that changed since the stream last took a batch."""

    def __init__(self, hub: ChangeHub, loop: asyncio.AbstractEventLoop) -> None:
        self._hub = hub
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: dict[int, JobChange] = {}
        self._ended = False
        # set in the loop's thread only
        self._ready = asyncio.Event()
        self._live = asyncio.Event()

    def offer(self, changes: Sequence[JobChange]) -> None:
        """From the hub's thread: keep each job's latest change (moved to the end: the batch stays in order)."""
        with self._lock:
            for change in changes:
                self._pending.pop(change.job.id, None)
                self._pending[change.job.id] = change
        self._signal(self._ready)

    def go_live(self) -> None:
        """From the hub's thread: the feed's cursor is older than this subscription: nothing is missed now."""
        self._signal(self._live)

    def end(self) -> None:
        """From any thread: the hub closed; the stream ends after what it holds."""
        with self._lock:
            self._ended = True
        self._signal(self._ready)
        self._signal(self._live)

    def _signal(self, event: asyncio.Event) -> None:
        try:
            self._loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # the loop closed under a stream that is ending
            pass

    async def live(self) -> None:
        """Until every change from now on will reach this stream."""
        await self._live.wait()

    async def next_batch(self) -> list[JobChange] | None:
        """Wait until something changed and take all of it; None once the hub has closed."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            with self._lock:
                batch = list(self._pending.values())
                self._pending.clear()
                ended = self._ended
            if batch:
                return batch
            if ended:
                return None

    def close(self) -> None:
        self._hub.unsubscribe(self)


class ChangeHub:
    """One per app. `feed` makes a Feed whose cursor starts now (called when the reader starts); `listen` asks
    for wake-ups where the database pushes them."""

    def __init__(self, feed: Callable[[], Feed], listen: Listen, timing: HubTiming | None = None) -> None:
        self._make_feed = feed
        self._listen = listen
        self.timing = timing or HubTiming()
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()
        self._joining: list[Subscription] = []  # not live yet: they wait for the reader's next read
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._closed = False

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Subscription:
        """A stream opens: it receives every change read from its going live on. Starts the reader if needed."""
        subscription = Subscription(self, loop)
        with self._lock:
            if self._closed:
                subscription.end()
                return subscription
            self._subscribers.add(subscription)
            self._joining.append(subscription)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="errands-events", daemon=True)
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)
        self._wake.set()  # a reader with no stream left stops now, not at its next read

    @property
    def streams(self) -> int:
        with self._lock:
            return len(self._subscribers)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the reader and end the open streams (the app's shutdown)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.end()
        self._wake.set()
        if thread is not None:
            thread.join(timeout_s)

    # the reader's thread ---------------------------------------------------------------------------------

    def _active(self) -> bool:
        """Whether to go on; when not, the thread is forgotten under the lock a subscribe takes, so a stream
        that opens from now on starts a new reader."""
        with self._lock:
            if self._subscribers and not self._closed:
                return True
            self._thread = None
            return False

    def _run(self) -> None:
        listener = self._start_listener()  # before the feed's cursor: no change falls between the two
        feed: Feed | None = None
        try:
            while self._active():
                started = time.monotonic()
                try:
                    feed = feed or self._make_feed()
                    self._fan_out(feed.poll())
                except ErrandsError as exc:  # the database is away: streams stay open, reads resume
                    log.warning("event stream: reading job changes failed: %s", exc)
                    self._wake.wait(self.timing.retry_s)
                self._pause(listener is not None, started)
        finally:
            if listener is not None:
                listener.stop()

    def _pause(self, pushed: bool, started: float) -> None:
        """Until the next read: a wake-up (LISTEN) or the backstop where the database pushes, else the poll
        interval; never sooner than batch_s after the last read began."""
        if pushed:
            self._wake.wait(self.timing.backstop_s)
        else:
            self._wake.wait(max(0.0, self.timing.poll_s - (time.monotonic() - started)))
        self._wake.clear()  # before the read: a wake-up from now on is about a commit the read may miss
        time.sleep(max(0.0, self.timing.batch_s - (time.monotonic() - started)))

    def _start_listener(self) -> Stoppable | None:
        try:
            return self._listen(self._wake.set)
        except ErrandsError as exc:  # no push then: poll
            log.warning("event stream: no LISTEN (%s); polling", exc)
            return None

    def _fan_out(self, changes: list[JobChange]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
            joining, self._joining = self._joining, []
        if changes:
            for subscription in subscribers:
                subscription.offer(changes)
        for subscription in joining:
            subscription.go_live()
