"""When each held job's lease was last known good, by this worker's own clock.

A worker that falls behind (an overloaded machine, a paused process, a claim that waited on the database)
may hold jobs whose leases lapsed: the rescuer has put them back and another worker may be running them.
Fencing rejects the late outcome, but the job would still have run twice. So the loop starts no job whose
lease was last known good a whole lease ago: it releases it instead (a fenced write, which changes nothing if
the lease is gone); and a child reaching a job after that moment gives it back unstarted. (The database dated
the lease a little later, so it may still hold for a moment. Holding jobs back earlier, at 3/4 of a lease,
measured worse: on a loaded MariaDB a renewal can take seconds to commit, and releasing jobs it was about to
save only added work.)
"Known good": asked for by a claim (the database dates the lease a little later), or renewed by a heartbeat
that was sent at that moment and found the job still this worker's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from errands.jobs import Job

_ASKED_KEPT = 8  # claims whose asking time is remembered (one is in flight at a time)


@dataclass(frozen=True)
class Renewal:
    sent_at: float
    asked: dict[int, str]  # job id -> the lease token the renewal asked for (never changed once made)
    renewed: frozenset[int]


class LeaseClock:
    """The loop's thread calls everything but `renewed`, which the heartbeat's thread calls."""

    def __init__(self, lease_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lease_s = lease_s
        self._good_at: dict[int, float] = {}  # job id -> when its lease was last known good
        self._token: dict[int, str] = {}  # job id -> the lease token of the attempt held now
        self._asked_at: dict[str, float] = {}  # claim token -> when the claim was asked for
        self._renewal: Renewal | None = None  # the heartbeat's latest (one assignment: no lock needed)
        self._applied: Renewal | None = None
        self._lost: list[int] = []  # held jobs a renewal found taken back, not yet reported by take_lost()

    def asking(self, token: str, now: float | None = None) -> None:
        self._asked_at[token] = self._clock() if now is None else now
        while len(self._asked_at) > _ASKED_KEPT:
            del self._asked_at[next(iter(self._asked_at))]

    def claimed(self, jobs: list[Job], now: float | None = None) -> None:
        now = self._clock() if now is None else now
        for job in jobs:
            token = job.lease.token if job.lease else ""
            self._good_at[job.id] = self._asked_at.get(token, now)
            self._token[job.id] = token

    def renewed(self, sent_at: float, asked: dict[int, str], renewed: set[int]) -> None:
        self._renewal = Renewal(sent_at, dict(asked), frozenset(renewed))

    def forget(self, job_id: int) -> None:
        self._good_at.pop(job_id, None)
        self._token.pop(job_id, None)

    def lapsed(self, jobs: list[Job], now: float | None = None) -> list[Job]:
        """Those of `jobs` whose lease may have lapsed (by `now`, a reading of the clock)."""
        self._apply_renewal()
        too_old = (self._clock() if now is None else now) - self._lease_s
        return [job for job in jobs if self._good_at.get(job.id, float("inf")) <= too_old]

    def take_lost(self) -> list[int]:
        """The held jobs a renewal found no longer this worker's (rescued elsewhere) since the last call."""
        self._apply_renewal()
        lost, self._lost = self._lost, []
        return lost

    def start_by(self, jobs: list[Job]) -> float | None:
        """The moment after which none of `jobs` is to start (the earliest of their leases may lapse then)."""
        known = [good_at for job in jobs if (good_at := self._good_at.get(job.id)) is not None]
        return min(known) + self._lease_s if known else None

    def _apply_renewal(self) -> None:
        renewal = self._renewal
        if renewal is None or renewal is self._applied:
            return
        self._applied = renewal
        for job_id, token in renewal.asked.items():
            good_at = self._good_at.get(job_id)
            if good_at is None or good_at > renewal.sent_at or self._token.get(job_id) != token:
                # finished since, or claimed again (a claim asked for before the renewal was sent may end after
                # it: the token tells the attempts apart): news of another lease
                continue
            # a held job the renewal didn't find is no longer this worker's: its lease is gone
            if job_id in renewal.renewed:
                self._good_at[job_id] = renewal.sent_at
            elif good_at != float("-inf"):
                self._good_at[job_id] = float("-inf")
                self._lost.append(job_id)
