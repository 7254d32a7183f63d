"""The log's lines reach the database from every process that writes them (issue 11 item 7): a separate worker
process, run-job, a detached background process, the Client; a database failure drops a batch with one
stderr line and fails nothing; old lines are pruned by `errands prune` and by the worker, once an hour."""

from __future__ import annotations

import re
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from errands.jobs import JobState
from errands.logship import LogShipper
from errands.store import SqlStore
from errands.worker.loop import Worker, WorkerOptions
from errands.worker.maintenance import LOG_PRUNE_EVERY_S, RESCUER_LOCK

if TYPE_CHECKING:
    from conftest import Project

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z (INFO|ERROR) job=")


def file_lines(path: Path) -> list[str]:
    """The lines JobLog wrote (a detached process's own output goes to the job log too: not ours)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return [line for line in text.splitlines() if LOG_LINE.match(line)]


def stored(project: Project, file: str) -> list[str]:
    return [line.line for line in project.main.log_tail(file, 1000)]


def wait_stored(project: Project, file: str, path: Path, timeout: float = 30) -> None:
    project.wait_for(
        lambda: sorted(stored(project, file)) == sorted(file_lines(path)), timeout, what=f"the {file} log's lines"
    )


def test_a_separate_workers_lines_are_in_the_database_as_in_the_files(project: Project) -> None:
    done = project.enqueue("record", 1)
    failed = project.enqueue("fail", max_attempts=1)
    worker = project.start_worker("--burst")
    assert worker.wait(60) == 0, worker.output()
    assert project.job(done).status is JobState.COMPLETED and project.job(failed).status is JobState.FAILED
    wait_stored(project, "job", project.log_file)
    wait_stored(project, "error", project.error_log_file)
    job_log = "\n".join(stored(project, "job"))
    assert f"Job {done} status: completed" in job_log and "Worker worker:" in job_log
    assert any(f"Job {failed} failed after 1 attempts" in line for line in stored(project, "error"))


def test_run_job_and_a_detached_process_ship_their_lines(project: Project) -> None:
    now = project.cli("run-job", "wjobs:record", "-", "--args-json", "[7]")
    assert now.returncode == 0, now.stderr
    background = project.cli("run-job", "wjobs:record", "-", "--args-json", "[8]", "--background")
    assert background.returncode == 0, background.stderr
    job_id = int(background.stdout.split()[1])
    project.wait_status(job_id, JobState.COMPLETED, timeout=60)
    project.wait_for(
        lambda: any(f"Job {job_id} status: completed" in line for line in stored(project, "job")),
        30,
        what="the detached process's last lines",
    )
    wait_stored(project, "job", project.log_file)


def test_a_database_failure_drops_the_batch_with_one_line_and_fails_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = SqlStore(f"sqlite:///{tmp_path / 'not-migrated.db'}")  # no tables: every insert fails
    shipper = LogShipper(broken, every_s=0.001, lines=1)
    try:
        for n in range(5):
            shipper.send([("job", n, f"line {n}")])  # never raises
    finally:
        shipper.close()  # ships what is left (and fails): waits for it
        broken.close()
    reported = capsys.readouterr().err.splitlines()
    assert len(reported) == 1  # once, until a batch goes through again
    assert re.match(r"errands: the log's lines in the database: \d lines not stored: database error: ", reported[0])
    assert reported[0].endswith("; they stay in the files")


def test_one_line_goes_in_within_the_interval_without_waiting_for_a_full_batch(project: Project) -> None:
    shipper = LogShipper(project.store)
    try:
        shipper.send([("error", 3, "alone")])
        project.wait_for(lambda: stored(project, "error") == ["alone"], 10, what="the line")
    finally:
        shipper.close()


def test_lines_after_close_still_go_in(project: Project) -> None:
    shipper = LogShipper(project.store)
    shipper.close()
    shipper.send([("job", None, "late line")])
    assert stored(project, "job") == ["late line"]


def test_prune_deletes_log_lines_past_the_retention(project: Project) -> None:
    client = project.client(log_retention=3600)
    store = project.store
    store.log_lines_insert([("job", None, "ancient")], now=store.now() - timedelta(hours=2))
    store.log_lines_insert([("job", None, "recent")])
    client.prune(86400)
    assert stored(project, "job") == ["recent"]


def test_the_worker_prunes_old_lines_once_an_hour_under_the_rescuers_lock(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.dir)
    settings = project.settings(log_retention=3600, rescue_interval=600)
    store = project.store
    old = store.now() - timedelta(hours=2)
    worker = Worker(store, settings, project.main.log, WorkerOptions())
    worker.start(heartbeat=False)
    try:
        store.log_lines_insert([("job", None, "old 1")], now=old)
        now = time.monotonic()
        worker.run_once(now=now)  # a first step prunes
        assert "old 1" not in stored(project, "job")
        store.log_lines_insert([("job", None, "old 2")], now=old)
        worker.run_once(now=now + 60)  # not again within the hour
        assert "old 2" in stored(project, "job")
        assert not store.lock_acquire(RESCUER_LOCK, "another", ttl_s=60)  # the worker holds it
        worker.run_once(now=now + LOG_PRUNE_EVERY_S)
        assert "old 2" not in stored(project, "job")
    finally:
        worker.shutdown()


def test_a_worker_without_the_rescuers_lock_leaves_pruning_to_its_holder(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.dir)
    store = project.store
    assert store.lock_acquire(RESCUER_LOCK, "another worker", ttl_s=600)
    store.log_lines_insert([("job", None, "old")], now=store.now() - timedelta(hours=2))
    worker = Worker(store, project.settings(log_retention=3600), project.main.log, WorkerOptions())
    worker.start(heartbeat=False)
    try:
        worker.run_once(now=time.monotonic())
    finally:
        worker.shutdown()
    assert "old" in stored(project, "job")


if sys.platform == "win32":  # the harness's processes are POSIX sessions
    pytestmark = pytest.mark.skip(reason="POSIX process harness")
