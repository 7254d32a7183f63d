"""How much work the worker takes at once, from how long its jobs take: the claim's size and the children's
batches. Quick jobs are claimed and handed over in batches (a round trip and a message per batch, not per job);
slow ones one at a time, so they aren't hoarded away from other workers."""

from __future__ import annotations

from errands.worker.executor import AttemptResult

PREFETCH_HORIZON_S = 0.05
MAX_PREFETCH = 800
CHILD_HORIZON_S = 0.02  # how much work (at the measured job duration) a child may have queued
MAX_CHILD_DEPTH = 400


class Sizing:
    def __init__(self, concurrency: int, prefetch: int | None) -> None:
        self._concurrency = concurrency
        self._prefetch = prefetch  # fixed by the operator, or None: sized by the measured duration
        self.avg_job_s = 1.0  # until measured, assume slow jobs: claim no more than the children can start

    def learn(self, ended: list[AttemptResult]) -> None:
        """Track how long jobs take."""
        for result in ended:
            self.avg_job_s = 0.9 * self.avg_job_s + 0.1 * result.duration_s

    def prefetch(self) -> int:
        """Jobs to claim ahead of free children: about PREFETCH_HORIZON_S of work, so quick jobs are claimed in
        batches of up to MAX_PREFETCH while slow ones aren't hoarded away from other workers."""
        if self._prefetch is not None:
            return self._prefetch
        per_child = PREFETCH_HORIZON_S / max(self.avg_job_s, 1e-6)
        return max(self._concurrency, min(MAX_PREFETCH, int(per_child * self._concurrency)))

    def depth(self) -> int:
        """Jobs handed to each child at once: one for slow jobs, CHILD_HORIZON_S of work for quick ones."""
        return max(1, min(MAX_CHILD_DEPTH, int(CHILD_HORIZON_S / max(self.avg_job_s, 1e-6))))

    def capacity(self) -> int:
        """Jobs to hold at most: the children's batches plus the prefetch."""
        return self._concurrency * self.depth() + self.prefetch()
