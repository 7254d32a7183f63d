"""The worker: claim -> execute -> record, in batches, under heartbeat-renewed leases.

One parent process supervises a pool of child processes (executor.Pool). The parent claims due jobs in
batches sized to free capacity (sizing.py) and keeps them in a local buffer, hands them to children (one at a
time for slow jobs, a few milliseconds' worth for quick ones), and records the outcomes (recording.py). While
jobs flow, the claims and the writes of outcomes run on a thread of their own (link.StoreLink), so the children
never wait on a round trip; outcomes that end meanwhile share the next write. An idle worker claims in its own
thread: the quickest pickup. Every job it holds is leased; a thread renews the leases, so a busy job is never
taken for a dead one, and every write is fenced by the lease token.

The loop is a repetition of one step, run_once(now): its duties on a clock (rescue, cancel checks, lease-lapse
checks, the heartbeat's news) go by `now`, so a test steps time instead of sleeping.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from dataclasses import InitVar, dataclass, field

from errands.errors import StoreError
from errands.jobs import Job, JobState
from errands.logs import JobLog
from errands.settings import Settings
from errands.store.base import Listener, Store, WorkerInfo
from errands.worker.executor import AttemptResult, Ending, Pool
from errands.worker.heartbeat import Heartbeat
from errands.worker.identity import claim_for, new_owner, new_token
from errands.worker.leases import LeaseClock
from errands.worker.link import StoreLink, pause_after
from errands.worker.maintenance import LOG_PRUNE_EVERY_S, prune_log_lines
from errands.worker.orphans import rescue
from errands.worker.paused import PausedQueues
from errands.worker.recording import Recorder
from errands.worker.sizing import Sizing

CANCEL_CHECK_S = 1.0
BURST_CONFIRMATIONS = 3  # empty claims in a row before a burst worker takes pending jobs for not due
BURST_RECHECK_S = 0.25  # at least this long between those claims
# Without a listener (MariaDB) an idle worker polls: soon after finding jobs (more tend to follow), then
# BUSY_POLL_S longer after each empty claim, up to poll_interval. (Doubling measured worse: a 60 ms gap in a
# stream of 1,000 jobs/s grew the wait to 160 ms and held the next jobs ~300 ms.)
BUSY_POLL_S = 0.02
WORKER_FAILED = 6  # run()'s exit code when the worker could not do its work (the CLI's for database errors)


@dataclass(frozen=True)
class WorkerOptions:
    queues: tuple[str, ...] = ()
    concurrency: int = 2
    burst: bool = False
    prefetch: int | None = None  # jobs claimed ahead of free children; default: one per child
    grace_s: float | None = None  # default: settings.grace


@dataclass
class Worker:
    store: Store
    settings: Settings
    log: JobLog
    options: WorkerOptions
    id: str = field(default_factory=lambda: new_owner("worker"))
    stopping: bool = False
    forced: bool = False
    buffer: deque[Job] = field(default_factory=deque)

    started_pool: InitVar[Pool | None] = None  # children the caller started early (they import meanwhile)

    def __post_init__(self, started_pool: Pool | None) -> None:
        self.pool = started_pool or Pool(
            self.options.concurrency, self.settings.allowed_jobs, self.settings.max_jobs_per_child
        )
        self.pool.log = self.pool.log or self.log  # what a child gets wrong goes to the error log
        self.sizing = Sizing(self.options.concurrency, self.options.prefetch)
        self._leases = LeaseClock(self.settings.lease_timeout)
        self.recorder = Recorder(self.store, self.settings, self.log, self._leases)
        self._cancel_now = threading.Event()
        self._next_cancel_check = 0.0
        self._next_rescue = 0.0
        self._next_log_prune = 0.0
        self._store_failures = 0
        self._empty_claims = 0  # burst: claims in a row that found nothing while jobs were pending
        self._pool_closed = False  # its wake-up pipe is closed: its descriptors may belong to others now
        self._listener: Listener | None = None
        self._heartbeat: Heartbeat | None = None
        self._poll_s = self.settings.poll_interval  # the idle wait before the next claim, where nothing wakes us
        self._could_not_start = False
        self._paused = PausedQueues(self.store)

    @property
    def held(self) -> dict[int, Job]:
        """Claimed and not yet recorded: buffered or running."""
        return self.recorder.held

    @property
    def _link(self) -> StoreLink | None:  # None before start() and once shutdown() closed it
        return self.recorder.link

    # life cycle ----------------------------------------------------------------------------------------

    def run(self) -> int:
        """Until stopped (or, with burst, until nothing is due). Returns the exit code: 0 once drained or stopped,
        whatever the jobs' outcomes; WORKER_FAILED when the worker could not do its work (its database
        unreachable at start, outcomes it could not write before it stopped)."""
        try:
            self.start()
            self._loop()
        except StoreError as exc:  # from start(): the loop rides out a failing database
            self.log.error(None, f"Worker {self.id} could not start: {exc}")
            self._could_not_start = True
        finally:
            self.shutdown()
        return WORKER_FAILED if self._could_not_start or self.recorder.failed else 0

    def _loop(self) -> None:
        while True:
            try:
                progress = self.run_once()
                self._store_failures = 0
                if progress:
                    self._empty_claims = 0
                done = self.options.burst and not self.held and not progress and self._settled() and self._drained()
            except StoreError as exc:  # a deadlock, a dropped connection: transient, the loop goes on
                self._store_failed(exc)
                done = False
            if done or self.stopping:
                return

    def start(self, heartbeat: bool = True) -> None:
        """Children, registration, listener, link; and the heartbeat's thread, unless a test beats by hand."""
        self.log.hold()  # the loop writes its log lines once per step, not once per line
        self.pool.start()
        now = self.store.now()
        info = WorkerInfo(
            self.id, socket.gethostname(), os.getpid(), self.options.queues, self.options.concurrency, now, now
        )
        self.store.worker_register(info)
        self._listener = self.store.listen(self._on_notification, lambda problem: self.log.error(None, problem))
        if heartbeat:
            self._heartbeat = Heartbeat(self.settings.heartbeat_s, self.beat, self._beat_failed).start()
        self.recorder.link = StoreLink(self.store, self._wake, self.settings.poll_interval)
        self.log.info(
            None,
            f"Worker {self.id} started: queues={','.join(self.options.queues) or '*'} "
            f"concurrency={self.options.concurrency}",
        )

    def request_stop(self) -> None:
        """From a signal handler: the first stops claiming and starts the grace; a second forces the stop."""
        self.forced = self.stopping
        self.stopping = True
        if not self._pool_closed:  # a signal may come after shutdown() closed the pool
            self.pool.wake()

    def shutdown(self) -> None:
        """Release what is buffered, give running jobs the grace, then stop the rest and release them."""
        self.stopping = True
        self.pool.recall()  # jobs queued in children and not started come back, to be released
        deadline = time.monotonic() + (self.settings.grace if self.options.grace_s is None else self.options.grace_s)
        self._release_unstarted()
        while self.pool.busy() and time.monotonic() < deadline and not self.forced:
            self.recorder.record(self.pool.wait(min(0.5, max(0.0, deadline - time.monotonic()))))
            self._release_unstarted()
        self.recorder.record(self.pool.stop(release_running=True))
        try:
            self._close_link()
            self._release_unstarted()
        except StoreError as exc:
            self.recorder.unwritten(self.id, exc)
        if self._listener:  # before the pool closes: its thread wakes the pool
            self._listener.stop()
        self._pool_closed = True
        self.pool.close()
        if self._heartbeat:
            self._heartbeat.stop()
        try:
            self.store.worker_deregister(self.id)
        except StoreError as exc:  # its row ages out: `errands workers` lists only live heartbeats
            self.log.error(None, f"Worker {self.id}: could not deregister: {exc}")
        self.log.info(None, f"Worker {self.id} stopped")
        self.log.flush()

    def _release_unstarted(self) -> None:
        """Stopping: jobs claimed (a claim may still arrive) or handed back by children go back to pending."""
        self._collect(time.monotonic())
        self.buffer.extend(self.pool.take_returned())
        released, self.buffer = list(self.buffer), deque()
        self.recorder.release(released)

    def _close_link(self) -> None:
        """Let the link finish its round trip; what it couldn't write is written here (or raises)."""
        link = self._link
        if link is None:
            return
        left = link.close()
        self._collect(time.monotonic())
        self.recorder.link = None
        self.recorder.take_back(left)
        self.recorder.write_unrecorded()

    # one step ------------------------------------------------------------------------------------------

    def run_once(self, now: float | None = None) -> int:
        """Rescue if due, claim to fill capacity, dispatch, wait for outcomes, record them. `now` (a reading of
        time.monotonic(), or later: a test steps it) is the time the step's duties go by.
        Returns how many jobs it claimed plus how many attempts ended or were recorded (0: nothing happened)."""
        stepped = now is not None
        now = now if now is not None else time.monotonic()
        progress = self._collect(now)
        self.recorder.write_unrecorded()  # any a failed write of this thread left behind
        self._maybe_rescue(now)
        self._maybe_prune_logs(now)
        progress += 0 if self.stopping else self._fill(now)
        self._dispatch(now)
        idle = not self.held
        wait_s = self._poll_s if idle else CANCEL_CHECK_S
        if self.options.burst and idle:  # nothing to wait for: claim again, or find the queue drained
            wait_s = 0.0
        ended = self.pool.wait(min(wait_s, self._until_next_duty(now)))
        now = now if stepped else time.monotonic()  # the wait took time: the lapse check is by the clock again
        self.sizing.learn(ended)
        self._dispatch(now)  # keep the children busy first
        self.recorder.record(ended)
        self._check_cancels(now)
        self._stop_lost()
        self.log.flush()
        return progress + len(ended)

    def _settled(self) -> bool:
        """No claim in flight and nothing from the link waiting to be taken in."""
        return self._link is None or self._link.settled

    def _collect(self, now: float) -> int:
        """Take in what the link's thread got: claimed jobs, recorded outcomes, failures."""
        if self._link is None:
            return 0
        got = self._link.collect()
        self._take(got.claimed, now)
        self.recorder.forget(got.finished)
        for exc, pause in got.errors:
            self.log.error(None, f"Worker {self.id}: {exc} (again in {pause:.1f}s)")
        return len(got.claimed) + len(got.finished)

    def _take(self, claimed: list[Job], now: float) -> None:
        self._leases.claimed(claimed, now)
        self.buffer.extend(claimed)
        self.recorder.hold(claimed)

    def _fill(self, now: float) -> int:
        """Claim up to capacity when the buffer runs low: in the link's thread while jobs are held (the
        children keep running meanwhile), here when idle. Returns how many jobs were claimed here."""
        if self._link is not None and self._link.claiming:
            return 0
        capacity = self.sizing.capacity()
        have = self.pool.busy() + len(self.buffer)
        if have > capacity // 2:
            return 0  # claim again once half of it is done: fewer, larger claims
        want = capacity - have
        paused = self._paused.current(now)
        claim = claim_for(self.id, new_token(), self.settings.lease_timeout, self.options.queues, paused)
        self._leases.asking(claim.token, now)
        if self.held and self._link is not None:
            self._link.claim(claim, want)
            return 0
        jobs = self.store.jobs_claim(claim, want)
        self._take(jobs, now)
        if self._listener is None:
            self._poll_s = BUSY_POLL_S if jobs else min(self._poll_s + BUSY_POLL_S, self.settings.poll_interval)
        return len(jobs)

    def _dispatch(self, now: float) -> None:
        returned = self.pool.take_returned()  # handed to a child that didn't start them: first in line again
        self.buffer.extendleft(reversed(returned))
        depth = self.sizing.depth()
        room = min(self.pool.room(depth), len(self.buffer))
        if room <= 0:
            return
        batch = self._unlapsed([self.buffer.popleft() for _ in range(room)], now)
        timed = [(job, job.timeout_s or self.settings.timeout) for job in batch]
        unplaced = self.pool.assign(timed, depth, self._leases.start_by(batch))
        self.buffer.extendleft(reversed(unplaced))
        for job in batch[: len(batch) - len(unplaced)]:
            self.log.executing(job)

    def _unlapsed(self, batch: list[Job], now: float) -> list[Job]:
        """The jobs of `batch` that may start; those whose lease may have lapsed are released (leases.py)."""
        lapsed = self._leases.lapsed(batch, now)
        if not lapsed:
            return batch
        for job in lapsed:
            self.log.error(job, f"Job {job.id}: its lease may have lapsed before it started (the worker fell behind)")
        self.recorder.release(lapsed)
        gone = {job.id for job in lapsed}
        return [job for job in batch if job.id not in gone]

    def _drained(self) -> bool:
        """Burst: whether nothing is left to do. A claim skips rows other transactions have locked (SKIP
        LOCKED: another worker's claim, a transaction about to roll back), so one empty claim proves nothing
        while jobs are pending: it takes BURST_CONFIRMATIONS in a row, apart, to call those not due."""
        if not self.store.jobs_count_by_status().get(JobState.PENDING.value):
            return True
        self._empty_claims += 1
        if self._empty_claims >= BURST_CONFIRMATIONS:
            return True
        self._supervise(max(self.settings.poll_interval, BURST_RECHECK_S))
        return False

    def _store_failed(self, exc: StoreError) -> None:
        """Log a failed step and pause (longer after each failure in a row), still supervising the children."""
        self._store_failures += 1
        pause = pause_after(self._store_failures, self.settings.poll_interval)
        self.log.error(None, f"Worker {self.id}: {exc} (again in {pause:.1f}s)")
        self.log.flush()
        self._supervise(pause)

    def _supervise(self, wait_s: float) -> None:
        """Wait, recording what ends meanwhile."""
        ended = self.pool.wait(wait_s)
        self.sizing.learn(ended)
        self.recorder.record(ended)

    # duties on a clock ---------------------------------------------------------------------------------

    def _until_next_duty(self, now: float) -> float:
        return max(0.0, min(self._next_rescue, self._next_cancel_check if self.held else float("inf")) - now)

    def _maybe_rescue(self, now: float) -> None:
        if now >= self._next_rescue:
            self._next_rescue = now + self.settings.rescue_interval
            rescue(self.store, self.settings, self.log, self.id)

    def _maybe_prune_logs(self, now: float) -> None:
        if now >= self._next_log_prune:
            self._next_log_prune = now + LOG_PRUNE_EVERY_S
            prune_log_lines(self.store, self.settings, self.log, self.id)

    def _check_cancels(self, now: float) -> None:
        if not self.held or (now < self._next_cancel_check and not self._cancel_now.is_set()):
            return
        self._cancel_now.clear()
        self._next_cancel_check = now + CANCEL_CHECK_S
        for job_id in self.store.jobs_cancel_requested(list(self.held)):
            buffered = next((job for job in self.buffer if job.id == job_id), None)
            if buffered is not None:
                self.buffer.remove(buffered)
                self.recorder.record([AttemptResult(buffered, Ending.CANCELLED, 0.0)])
            else:
                self.pool.cancel(job_id)

    def _stop_lost(self) -> None:
        """A renewal found held jobs taken back (rescued elsewhere): another worker may run them now, so those in
        a child are stopped rather than run to their end. (Buffered ones are released unstarted: _unlapsed.)"""
        for job_id in self._leases.take_lost():
            job = self.held.get(job_id)
            if job is None or job.lease is None or not self.pool.cancel(job_id):
                continue
            self.recorder.lost_lease(job)
            message = f"Job {job_id}: its lease was lost (taken back by a rescuer): stopping it"
            self.log.error(job, message, job.attempts)

    # threads -------------------------------------------------------------------------------------------

    def _on_notification(self, channel: str, payload: str) -> None:
        if channel == "errands_cancel":
            self._cancel_now.set()
        # a busy worker too: it may have room now (what it holds may be outcomes waiting for their write)
        if not self._pool_closed:
            self.pool.wake()

    def _wake(self) -> None:
        if not self._pool_closed:
            self.pool.wake()

    def beat(self, now: float | None = None) -> None:
        """Renew the held jobs' leases (the heartbeat's thread, or a test by hand): the loop hears which were
        renewed (good for another lease from `now`, when the renewal was sent) and which were lost."""
        held = {job.id: job.lease.token for job in list(self.held.values()) if job.lease}
        sent_at = time.monotonic() if now is None else now
        renewed = self.store.leases_renew(self.id, held, self.settings.lease_timeout)
        self._leases.renewed(sent_at, held, renewed)
        self.store.worker_heartbeat(self.id)

    def _beat_failed(self, exc: Exception) -> None:
        self.log.error(None, f"Worker {self.id}: heartbeat failed: {exc}")
