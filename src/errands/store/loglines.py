"""The log lines kept in the database (errands_log_lines): the job log's and the error log's lines, shipped in
batches by every process that writes them (errands.logship), so an operator reads what workers on other
machines wrote. A mixin of SqlStore: it uses SqlStore's `_tx` and `_now`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select

from errands.logs import LOG_FILES, LogRow
from errands.reports import LogLine
from errands.store.changed import SqlStoreParts
from errands.store.schema import log_lines
from errands.store.storable import storable_text

# A line is cut this long: the file's line is at most logs.MAX_LINE characters of message plus its head and a
# cut note; MariaDB's TEXT holds 65,535 bytes (16,000 characters of up to 4 bytes).
LINE_LIMIT = 16_000
# lines deleted per transaction by a prune (SQLite's one write lock: see sql.PRUNE_BATCH)
PRUNE_BATCH = 5000


class LogLinesMixin(SqlStoreParts):
    def log_lines_insert(self, rows: Sequence[LogRow], *, now: datetime | None = None) -> None:
        if not rows:
            return
        with self._tx() as conn:
            moment = self._now(conn, now)
            values = [
                {"at": moment, "file": file, "job_id": job_id, "line": storable_text(line, LINE_LIMIT)}
                for file, job_id, line in rows
            ]
            conn.execute(insert(log_lines), values)

    def log_lines_tail(self, file: str, n: int) -> list[LogLine]:
        if file not in LOG_FILES:
            raise ValueError(f"file is one of {', '.join(LOG_FILES)}, got {file!r}")
        stmt = (
            select(log_lines.c.id, log_lines.c.file, log_lines.c.line)
            .where(log_lines.c.file == file)
            .order_by(log_lines.c.id.desc())
            .limit(n)
        )
        with self._tx(write=False) as conn:
            newest_first = [LogLine(int(row.id), row.file, row.line) for row in conn.execute(stmt)]
        return newest_first[::-1]

    def log_lines_prune(self, older_than_s: float, *, now: datetime | None = None) -> int:
        """Oldest first, by id (lines go in in time order), up to the first line not older than the cutoff; in
        short transactions. `at` has no index of its own: the walk is the primary key's."""
        with self._tx(write=False) as conn:
            cutoff = self._now(conn, now) - timedelta(seconds=older_than_s)
        pruned = 0
        while True:
            with self._tx() as conn:
                batch = select(log_lines.c.id, log_lines.c.at).order_by(log_lines.c.id).limit(PRUNE_BATCH)
                rows = list(conn.execute(batch))
                old = [int(row.id) for row in rows if row.at < cutoff]
                if old:
                    conn.execute(delete(log_lines).where(log_lines.c.id.between(old[0], old[-1])))
            pruned += len(old)
            if len(old) < PRUNE_BATCH:
                return pruned
