"""The paused queues, as a worker's claims exclude them: read from the store at most once per PAUSE_READ_S.

errands_queues is tiny, so the read is cheap; reading it once a second rather than joining it in every claim
keeps the claim statement as it was. A pause therefore takes effect within a second (plus a claim already on
its way); a resume wakes idle workers (the store notifies it) and takes effect within a second too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from errands.store.base import Store

PAUSE_READ_S = 1.0


@dataclass
class PausedQueues:
    store: Store
    every_s: float = PAUSE_READ_S
    _names: tuple[str, ...] = field(default=(), init=False)
    _read_at: float | None = field(default=None, init=False)

    def current(self, now: float) -> tuple[str, ...]:
        """The paused queues' names as of at most `every_s` before `now` (a monotonic time)."""
        if self._read_at is None or now - self._read_at >= self.every_s:
            self._names = tuple(sorted(self.store.queues_paused()))
            self._read_at = now
        return self._names
