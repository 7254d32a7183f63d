"""The detached process of run_background_job(): `python -m errands.worker.detached JOB_ID OWNER TOKEN`, the
starter's Settings as JSON on stdin (errands.spawn). It runs the job reserved to OWNER/TOKEN, then exits."""

from __future__ import annotations

import sys

from errands.errors import ErrandsError
from errands.logs import open_log
from errands.logship import LogShipper
from errands.runtime import run_claimed
from errands.spawn import settings_from
from errands.store import open_store
from errands.worker.identity import claim_for


def main(argv: list[str]) -> int:
    job_id, owner, token = int(argv[0]), argv[1], argv[2]
    try:
        settings = settings_from(sys.stdin.buffer.read())
    except ErrandsError as exc:  # stderr is the job log file the starter opened for this process
        print(f"errands: detached job {job_id} could not start: {exc}", file=sys.stderr)
        return 6
    try:
        store = open_store(settings.database_url)
    except ErrandsError as exc:
        log = open_log(settings)  # the files alone: the database is what failed
        log.error(None, f"detached job {job_id} could not start: {exc}")
        log.close()
        return 6
    log = open_log(settings, sink=LogShipper(store))
    try:
        run_claimed(store, settings, log, claim_for(owner, token, settings.lease_timeout), job_id)
    finally:
        log.close()  # its last lines go to the database first
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
