"""Run one job now, with its retries and follow-ups, under this process's lease: `errands run-job` and the
detached process of run_background_job(). Each attempt runs in a child process of a one-child pool, so a
timeout or a cancel really stops it. Pending retries and follow-ups stay reserved to this process's lease,
renewed with the current job's while they wait their turn, so no worker takes them; if this process dies, the
lease expires and workers or the rescuer take over. The child starts only when the first job is nearly due:
a delayed job waits in this one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from errands.jobs import Job, JobState
from errands.logs import JobLog
from errands.settings import Settings
from errands.store.base import Claim, Store
from errands.worker.executor import AttemptResult, Pool
from errands.worker.heartbeat import Heartbeat, lease_renewer
from errands.worker.identity import lease_until
from errands.worker.outcomes import outcome_for

CANCEL_CHECK_S = 1.0
CHILD_BOOT_S = 1.0  # the child starts this long before the job is due: it imports while the job waits


@dataclass
class OneShot:
    store: Store
    settings: Settings
    log: JobLog
    claim: Claim
    # run every rescue_interval while this runs (the rescuer pass): a lost job elsewhere is found while it lives
    maintenance: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.policy = self.settings.retry_policy()
        self._todo: list[int] = []  # the job being run first, then the follow-ups reserved behind it
        self._pool = Pool(1, self.settings.allowed_jobs, kill_grace_s=3.0, log=self.log)
        self._pool_started = False

    def run(self, job_id: int) -> list[Job]:
        """Run the job and every follow-up it creates; return them as they ended, in order."""
        pool = self._pool
        self._todo = [job_id]
        beat = lease_renewer(self.store, self.claim.owner, self._held, self.claim.lease_s)
        heartbeat = Heartbeat(self.settings.heartbeat_s, beat, self._heartbeat_failed).start()
        duties = None
        if self.maintenance is not None:
            duties = Heartbeat(self.settings.rescue_interval, self.maintenance, self._maintenance_failed).start()
        finished: list[Job] = []
        try:
            while self._todo:
                final, follow_ups = self._run_to_end(pool, self._todo[0])
                finished.append(final)
                self._todo = self._todo[1:] + follow_ups  # a new list: the heartbeat thread reads it
        finally:
            if duties is not None:
                duties.stop()
            heartbeat.stop()
            pool.stop(release_running=False)
            pool.close()
        return finished

    def _held(self) -> dict[int, str]:
        """Every job this run holds: the current one and the follow-ups waiting their turn (all reserved to
        this claim's token), so none loses its reservation while another runs."""
        return dict.fromkeys(self._todo, self.claim.token)

    def _start_child(self) -> None:
        if not self._pool_started:
            self._pool.start()
            self._pool_started = True

    def _heartbeat_failed(self, exc: Exception) -> None:
        self.log.error(None, f"lease renewal failed: {exc}")

    def _maintenance_failed(self, exc: Exception) -> None:
        self.log.error(None, f"rescue pass failed: {exc}")

    def _run_to_end(self, pool: Pool, job_id: int) -> tuple[Job, list[int]]:
        """Attempts until the job completes, fails or is cancelled."""
        while True:
            job = self._claim_when_due(job_id)
            if job is None:
                return self.store.job_get(job_id), []
            self.log.executing(job)
            try:
                result = self._attempt(pool, job)
            except KeyboardInterrupt:
                self._interrupted(pool, job)
                raise
            now = self.store.now()  # the reservation's expiry is on the database's clock
            outcome = outcome_for(result, self.settings, self.policy, self.log, lease_until(self.claim, now))
            [done] = self.store.jobs_finish([outcome])
            if not done.recorded:
                self.log.error(job, f"Job {job.id}: lease lost, outcome not recorded", job.attempts)
                return self.store.job_get(job_id), []
            if outcome.next_state is not JobState.PENDING:
                return self.store.job_get(job_id), list(done.follow_up_ids)

    def _interrupted(self, pool: Pool, job: Job) -> None:
        """Ctrl-C: stop the attempt and record the job cancelled, so no worker runs it again later."""
        pool.cancel(job.id)
        ended: list[AttemptResult] = []
        while not ended:
            ended = pool.wait(CANCEL_CHECK_S)
        outcome = outcome_for(ended[0], self.settings, self.policy, self.log)
        self.store.jobs_finish([outcome])

    def _claim_when_due(self, job_id: int) -> Job | None:
        """Wait (reserved) until the job is due, then claim it; None if it left pending meanwhile.
        Ctrl-C while waiting cancels the job, which is this process's alone."""
        try:
            return self._wait_and_claim(job_id)
        except KeyboardInterrupt:
            self.store.job_cancel(job_id)
            raise

    def _wait_and_claim(self, job_id: int) -> Job | None:
        waiter = threading.Event()
        while True:
            job = self.store.job_get(job_id)
            if job.status is not JobState.PENDING:
                return None
            wait_s = (job.scheduled_at - self.store.now()).total_seconds()
            if wait_s <= CHILD_BOOT_S:
                self._start_child()
            if wait_s <= 0:
                return self.store.job_claim_by_id(job_id, self.claim)
            waiter.wait(min(wait_s, CANCEL_CHECK_S))

    def _attempt(self, pool: Pool, job: Job) -> AttemptResult:
        timeout_s = job.timeout_s or self.settings.timeout
        pool.submit(job, timeout_s)
        while True:
            ended = pool.wait(CANCEL_CHECK_S)
            if ended:
                return ended[0]
            if self.store.jobs_cancel_requested([job.id]):
                pool.cancel(job.id)
