"""The log files rotate by size while several processes append (issue 11 item 7): no line lost or doubled, none
written into a renamed file for good, backups counted; and every line also goes to the sink as the file has it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from errands.jobs import ErrorInfo, NewJob
from errands.logs import JobLog, LogRow, Rotation
from factories import make_job

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="rotation under a lock is POSIX's (flock)")

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from errands.logs import JobLog, Rotation

    name, count, folder, max_bytes, backups = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), *map(int, sys.argv[4:])
    log = JobLog(folder / "jobs.log", folder / "errors.log", rotation=Rotation(max_bytes, backups))
    print("ready", flush=True)
    sys.stdin.readline()  # go: both processes write at once
    for n in range(count):
        log.info(None, f"line {name}-{n} " + "x" * (n % 50))
    log.close()
    """
)


def run_writers(folder: Path, count: int, max_bytes: int, backups: int, names: tuple[str, ...] = ("a", "b")) -> None:
    args = [str(count), str(folder), str(max_bytes), str(backups)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for name in names
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()
        assert proc.wait(timeout=120) == 0


def backups_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("jobs.log.[0-9]*"), key=lambda path: int(path.suffix[1:]))


def messages(path: Path) -> list[str]:
    return [line.split(" ", 4)[4] for line in path.read_text().splitlines()]


def test_two_processes_past_the_limit_lose_no_line_and_double_none(tmp_path: Path) -> None:
    run_writers(tmp_path, 3000, max_bytes=16_384, backups=1000)
    files = [tmp_path / "jobs.log", *backups_of(tmp_path)]
    written = [message.split(" ")[1] for path in files for message in messages(path)]
    expected = {f"{name}-{n}" for name in "ab" for n in range(3000)}
    assert len(written) == len(expected) and set(written) == expected
    rotated = backups_of(tmp_path)
    assert len(rotated) >= 10  # ~800 KB of lines over 16 KB files
    assert [path.suffix for path in rotated] == [f".{n}" for n in range(1, len(rotated) + 1)]
    for path in rotated:  # a file is rotated once it reached the limit, not much later
        assert 16_384 <= path.stat().st_size < 16_384 + 4_096
    assert (tmp_path / "jobs.log").stat().st_size < 16_384 + 4_096
    # each writer's lines keep their order, across the files from the oldest backup to the current file
    ordered = [m.split(" ")[1] for path in [*reversed(rotated), tmp_path / "jobs.log"] for m in messages(path)]
    for name in "ab":
        mine = [int(item.split("-")[1]) for item in ordered if item.startswith(f"{name}-")]
        assert mine == sorted(mine)


def test_only_the_newest_backups_are_kept(tmp_path: Path) -> None:
    run_writers(tmp_path, 2000, max_bytes=8192, backups=2)
    assert [path.name for path in backups_of(tmp_path)] == ["jobs.log.1", "jobs.log.2"]
    newest = messages(tmp_path / "jobs.log")[-1].split(" ")[1]
    assert newest in {"a-1999", "b-1999"}


def test_no_backups_means_the_full_file_is_removed(tmp_path: Path) -> None:
    log = JobLog(tmp_path / "jobs.log", tmp_path / "errors.log", rotation=Rotation(4096, 0))
    try:
        for n in range(200):
            log.info(None, f"line {n} " + "x" * 40)
    finally:
        log.close()
    assert backups_of(tmp_path) == []
    assert 0 < (tmp_path / "jobs.log").stat().st_size < 4096 + 200
    assert messages(tmp_path / "jobs.log")[-1].startswith("line 199 ")


def test_a_writer_reopens_the_path_once_another_rotated_it(tmp_path: Path) -> None:
    paths = (tmp_path / "jobs.log", tmp_path / "errors.log")
    first = JobLog(*paths, rotation=Rotation(4096, 5))
    second = JobLog(*paths, rotation=Rotation(4096, 5))
    try:
        second.info(None, "second's first line")  # second holds the file that first is about to rotate
        first.info(None, "x" * 2000)
        first.info(None, "y" * 2000)  # past the limit: renamed to jobs.log.1
        assert messages(tmp_path / "jobs.log.1")[-1] == "y" * 2000
        second.info(None, "second's next line")
    finally:
        first.close()
        second.close()
    assert messages(tmp_path / "jobs.log") == ["second's next line"]
    assert messages(tmp_path / "jobs.log.1")[0] == "second's first line"


class Sink:
    def __init__(self) -> None:
        self.rows: list[LogRow] = []
        self.closed = False

    def send(self, rows: list[LogRow]) -> None:
        self.rows.extend(rows)

    def close(self) -> None:
        self.closed = True


def test_the_sink_gets_every_line_as_the_file_has_it(tmp_path: Path) -> None:
    paths = (tmp_path / "jobs.log", tmp_path / "errors.log")
    sink = Sink()
    log = JobLog(*paths, sink=sink)
    log.enqueued([1, 2], [NewJob("t.A", ""), NewJob("t.B", "run")])
    log.executing(make_job(id=3))
    log.attempt_failed(make_job(id=4), ErrorInfo("ValueError", "bad \udcff byte", "Traceback:\n  line\nValueError"))
    log.hold()
    log.completed(make_job(id=5), 0.5)
    log.info(None, "héllo ✓")
    assert (
        len(sink.rows) == 2 + 2 + 4 + 4
    )  # the failure: 4 lines in both files
    log.close()
    assert sink.closed
    for file, path in (("job", paths[0]), ("error", paths[1])):
        assert [row[2] for row in sink.rows if row[0] == file] == path.read_text(encoding="utf-8").splitlines()
    assert [row[1] for row in sink.rows if row[0] == "job"] == [1, 2, 3, 3, 4, 4, 4, 4, 5, 5, None]
    assert [row[1] for row in sink.rows if row[0] == "error"] == [4, 4, 4, 4]
    assert "bad \\udcff byte" in sink.rows[4][2]
