"""The worker's bookkeeping of the jobs it holds: claimed and not yet recorded (buffered or running), and the
outcomes of their attempts, decided, logged and written (through the link while it runs, else directly).

Every write is fenced by the job's lease token; the jobs stay held (their leases renewed) until the write
of their outcome is known, and an outcome whose write failed is written later, never decided (and logged)
again. An attempt stopped because its lease was lost ends here unwritten: the lease is someone else's.
"""

from __future__ import annotations

from errands.errors import StoreError
from errands.jobs import Job
from errands.logs import JobLog
from errands.settings import Settings
from errands.store.base import Finished, Outcome, Store
from errands.worker.executor import AttemptResult, Ending
from errands.worker.leases import LeaseClock
from errands.worker.link import StoreLink
from errands.worker.outcomes import outcome_for


class Recorder:
    def __init__(self, store: Store, settings: Settings, log: JobLog, leases: LeaseClock) -> None:
        self._store = store
        self._settings = settings
        self._policy = settings.retry_policy()
        self._log = log
        self._leases = leases
        self.held: dict[int, Job] = {}  # claimed and not yet recorded: buffered or running
        self.link: StoreLink | None = None  # writes go through it while it runs
        self._unrecorded: list[Outcome] = []  # decided and logged, not yet written (the write failed)
        self._lost: dict[int, str] = {}  # job id -> the token of the attempt stopped because its lease was lost
        self.failed = False  # stopping, outcomes could not be written

    def hold(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.held[job.id] = job

    def record(self, results: list[AttemptResult]) -> None:
        """Decide and log each outcome, then write them: through the link while it runs, else here."""
        if self._lost:
            results = self._drop_lost(results)
        if not results:
            return
        outcomes = [outcome_for(r, self._settings, self._policy, self._log) for r in results]
        if self.link is not None:
            self.link.write(outcomes)
            return
        self._unrecorded.extend(outcomes)
        self.write_unrecorded()

    def release(self, jobs: list[Job]) -> None:
        """Back to pending, unstarted (not charged to the job's budget)."""
        self.record([AttemptResult(job, Ending.RELEASED, 0.0) for job in jobs])

    def write_unrecorded(self) -> None:
        """Write the decided outcomes; if the write fails they stay, for the next step to write (the jobs stay
        held meanwhile, their leases renewed)."""
        if not self._unrecorded:
            return
        finished = self._store.jobs_finish(self._unrecorded)
        written, self._unrecorded = self._unrecorded, []
        self.forget(list(zip(written, finished, strict=True)))

    def take_back(self, unwritten: list[Outcome]) -> None:
        """Outcomes the link could not write (it closed): first in line for the next write here."""
        self._unrecorded[:0] = unwritten

    def unwritten(self, worker_id: str, exc: StoreError) -> None:
        """Stopping, the last writes failed: the worker did not do its work. Their jobs stay running until their
        leases expire; then the rescuer returns them (a lost attempt each)."""
        self.failed = True
        count, self._unrecorded = len(self._unrecorded), []
        self._log.error(None, f"Worker {worker_id}: {count} outcome(s) could not be written: {exc}")

    def forget(self, finished: list[tuple[Outcome, Finished]]) -> None:
        """Recorded jobs are no longer held; one whose lease was lost is logged. Only the attempt the outcome
        was for: a retry may have been claimed again already (by the claimer, before this news came in)."""
        for outcome, done in finished:
            job = self._drop(done.job_id, outcome.token)
            if job is not None and not done.recorded:
                self._log.error(job, f"Job {job.id}: lease lost before its outcome was recorded", job.attempts)

    def lost_lease(self, job: Job) -> None:
        """The attempt is being stopped because its lease was lost: its end is not to be recorded."""
        if job.lease is not None:
            self._lost[job.id] = job.lease.token

    def _drop_lost(self, results: list[AttemptResult]) -> list[AttemptResult]:
        kept = []
        for result in results:
            job = result.job
            if job.lease is None or self._lost.get(job.id) != job.lease.token:
                kept.append(result)
                continue
            del self._lost[job.id]
            self._drop(job.id, job.lease.token)
        return kept

    def _drop(self, job_id: int, token: str) -> Job | None:
        """No longer held, if the held attempt is the one with this token (returned)."""
        job = self.held.get(job_id)
        if job is None or job.lease is None or job.lease.token != token:
            return None
        del self.held[job_id]
        self._leases.forget(job_id)
        return job
