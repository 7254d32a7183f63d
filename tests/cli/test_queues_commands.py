"""`errands queues [--json]`, `errands queues pause NAME`, `errands queues resume NAME`."""

from __future__ import annotations

from typing import Any

SAMPLE = "examples.jobs.SampleJob"


def test_queues_list_pause_resume(cli: Any) -> None:
    cli.enqueue(SAMPLE, "process", "a,b", "--queue", "mail")
    cli.enqueue(SAMPLE, "process", "c,d", "--queue", "mail")
    cli.enqueue(SAMPLE, "process", "e,f")

    listed = cli.ok("queues", "--json").json()
    assert [q["name"] for q in listed] == ["default", "mail"]
    mail = listed[1]
    assert (mail["paused"], mail["pending"], mail["due"], mail["running"]) == (False, 2, 2, 0)
    assert mail["oldest_due_at"].endswith("Z") and mail["oldest_due_age_s"] >= 0

    paused = cli.ok("queues", "pause", "mail")
    assert paused.stdout.strip() == "Queue mail paused (2 pending)"
    assert [q["paused"] for q in cli.ok("queues", "--json").json()] == [False, True]
    table = cli.ok("queues")
    assert "mail" in table.stdout and "paused" in table.stdout

    resumed = cli.ok("queues", "resume", "mail")
    assert resumed.stdout.strip() == "Queue mail resumed (2 pending)"
    assert [q["paused"] for q in cli.ok("queues", "--json").json()] == [False, False]


def test_a_bad_queue_name_is_one_line_and_exit_2(cli: Any) -> None:
    refused = cli.run("queues", "pause", " padded")
    assert refused.returncode == 2
    assert len(refused.stderr_lines) == 1 and "queue" in refused.stderr
