"""The Laravel runner's example jobs. Allowed in the shipped errands.toml."""

from __future__ import annotations

import os
import time
from typing import Any

# How long SampleJob.process works; the demo and the tests shorten it.
WORK_SECONDS_ENV = "SAMPLE_JOB_SECONDS"


class SampleJob:
    def process(self, first: str, second: str) -> dict[str, Any]:
        time.sleep(float(os.environ.get(WORK_SECONDS_ENV, "2")))
        return {"processed": [first, second]}

    def send_email(self, to: str, subject: str = "Your job is done") -> str:
        return f"sent {subject!r} to {to}"

    def next_job(self, result: Any) -> tuple[str, list[Any]] | None:
        """The Laravel runner's getNextJob(): after process, send the email."""
        if isinstance(result, dict) and "processed" in result:
            return ("send_email", [f"{result['processed'][0]}@example.com"])
        return None


class FailingJob:
    def process(self, *args: Any) -> None:
        raise RuntimeError("Simulated job failure")


def add(a: int, b: int) -> int:
    """A function target: "examples.jobs:add"."""
    return a + b
