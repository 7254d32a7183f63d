"""The Grafana dashboard asks only for series that /metrics exports: the series are read from a real app's
/metrics over a database holding jobs (finished, due, in a queue)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from deploy_files import GRAFANA_DASHBOARD
from fastapi.testclient import TestClient

from errands.client import JobRequest, connect
from errands.settings import Settings
from errands.testing import drain
from errands.web.app import create_app

pytestmark = pytest.mark.backends("sqlite")

SERIES = re.compile(r"\berrands_[a-z0-9_]+\b")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GRAFANA_DASHBOARD.read_text())
    return loaded


def queries() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return exprs


def exported_by_the_app(db_url: str, tmp_path: Path) -> set[str]:
    """The names of every series and metric family the app's /metrics shows (samples and # TYPE lines)."""
    settings = Settings(
        database_url=db_url,
        allowed_jobs={"examples.jobs:add": []},
        log_file=tmp_path / "job.log",
        error_log_file=tmp_path / "error.log",
        retry_delay=0,
    )
    client = connect(settings)
    try:
        client.enqueue(JobRequest("examples.jobs:add", args=[1, 2]))
        drain(client)  # one completed job: the duration histogram has a sample
        client.enqueue(JobRequest("examples.jobs:add", args=[1, 2], queue="mail"))  # and one due
    finally:
        client.close()
    with TestClient(create_app(settings)) as http:
        answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    return {
        line.split("{")[0].split()[0] if not line.startswith("#") else line.split()[2]
        for line in answer.text.splitlines()
        if line.strip() and not line.startswith("# EOF")
    }


def test_every_series_the_dashboard_queries_is_exported(db_url: str, tmp_path: Path) -> None:
    wanted = {name for expr in queries() for name in SERIES.findall(expr)}
    assert wanted, "the dashboard queries no errands_ series"
    missing = wanted - exported_by_the_app(db_url, tmp_path)
    assert not missing, f"the dashboard queries series /metrics doesn't export: {sorted(missing)}"


def test_the_dashboard_covers_what_the_issue_asks() -> None:
    """Throughput, failures, queue depth and oldest due job per queue, durations, live workers."""
    titles = " / ".join(p["title"].lower() for p in dashboard()["panels"])
    for topic in ("throughput", "fail", "queue depth", "oldest due", "duration", "live workers"):
        assert topic in titles, f"no panel about {topic}"
    joined = " ".join(queries())
    for series in ("errands_queue_due_jobs", "errands_queue_oldest_due_age_seconds", "errands_workers"):
        assert series in joined


def test_panels_are_well_formed() -> None:
    panels = dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["type"] in {"row", "stat", "timeseries"}
        for target in panel.get("targets", []):
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
        if panel["type"] != "row":
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
