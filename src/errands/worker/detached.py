"""The detached process of run_background_job(): `python -m errands.worker.detached JOB_ID OWNER TOKEN`."""

from __future__ import annotations

import sys

from errands.errors import ErrandsError
from errands.logs import JobLog
from errands.settings import load_settings
from errands.store import open_store
from errands.worker.identity import claim_for
from errands.worker.maintenance import rescue_once
from errands.worker.oneshot import OneShot


def main(argv: list[str]) -> int:
    job_id, owner, token = int(argv[0]), argv[1], argv[2]
    settings = load_settings()
    log = JobLog(settings.log_file, settings.error_log_file)
    try:
        store = open_store(settings.database_url)
    except ErrandsError as exc:
        log.error(None, f"detached job {job_id} could not start: {exc}")
        return 6
    try:
        rescue_once(store, settings, log, owner)
        OneShot(store, settings, log, claim_for(owner, token, settings.lease_timeout)).run(job_id)
    finally:
        store.close()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
