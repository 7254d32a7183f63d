"""benchmarks/bench.py --quick runs end to end: exit 0, every measurement in the JSON with positive numbers,
and no process left behind. Speed is not asserted (that is what `make bench` is for)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks" / "bench.py"

THROUGHPUT = ("jobs_per_s",)
DRAIN = ("jobs_per_s", "steady_jobs_per_s", "startup_s", "wall_s", "rss_mb", "pss_mb", "procs")
LATENCY = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "lag_s", "achieved_rate")
MEMORY = ("rss_mb", "pss_mb", "procs")
EXPECTED: dict[str, tuple[str, ...]] = {
    "enqueue": THROUGHPUT,
    "bulk": THROUGHPUT,
    "drain_w1": DRAIN,
    "drain_w2": DRAIN,
    "drain_w4": DRAIN,
    "latency_idle": LATENCY,
    "latency_100": LATENCY,
    "latency_1000": LATENCY,
    "memory_w2": MEMORY,
}
BACKLOG = ("jobs_per_s", "steady_jobs_per_s", "ratio")
API_ROUTE = ("requests", "p50_ms", "p90_ms", "p99_ms", "max_ms")


def _require(backend: str) -> None:
    """tests/conftest.py's require_server when importable; otherwise the same rule: skip locally, fail in CI."""
    if backend == "sqlite":
        return
    try:
        from tests.conftest import require_server
    except ImportError:
        pass
    else:
        require_server(backend)
        return
    import psycopg

    url = os.environ.get("ERRANDS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        problem = f"postgresql at {url} is not reachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI must test every backend)")
        pytest.skip(problem)


def _bench_processes(marker: str) -> list[int]:
    """Live processes whose environment holds `marker` (the bench's TMPDIR): workers and their children."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != b"Z":
            found.append(int(entry))
    return found


def _positive(doc: dict[str, Any], where: str, fields: tuple[str, ...]) -> None:
    for name in fields:
        value = doc.get(name)
        assert isinstance(value, int | float) and value > 0, f"{where}.{name} = {value!r} in {doc}"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_quick_bench_reports_every_measurement(backend: str, tmp_path: Path) -> None:
    _require(backend)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "bench.json"
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--backends", backend, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert proc.returncode == 0, f"bench.py exited {proc.returncode}\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
    assert "| measurement |" in proc.stdout  # the markdown table

    doc = json.loads(out.read_text())
    for key in ("date", "nproc", "cpu_model", "ram_gib", "python", "servers", "packages"):
        assert doc["machine"].get(key), f"machine.{key} missing: {doc['machine']}"
    assert doc["errors"] == []
    results = doc["results"][backend]
    for key, fields in EXPECTED.items():
        assert key in results, f"{key} missing from {sorted(results)}"
        _positive(results[key], f"{backend}.{key}", fields)
    if backend == "postgresql":
        sizes = [str(size) for size in doc["sizes"]["backlog"]]
        assert sorted(results["backlog"]) == sorted(sizes)
        for size in sizes:
            _positive(results["backlog"][size], f"backlog[{size}]", BACKLOG)
        api = results["api"]  # the HTTP API's routes through a real errands serve (api_bench.py)
        assert api["jobs"] == doc["sizes"]["api_jobs"] and api["routes"], api
        for name, route in api["routes"].items():
            assert "statuses" not in route, f"{name} answered {route['statuses']}"  # every request was a 200
            _positive(route, f"api[{name}]", API_ROUTE)

    assert _bench_processes(str(scratch)) == [], "bench.py left processes running"
    assert list(scratch.iterdir()) == [], "bench.py left scratch directories behind"


def test_peers_script_prints_ratios_errands_over_peer(tmp_path: Path) -> None:
    lines = [
        {"peer": "peer_bench_adapter", "variant": "postgres", "mode": "enqueue", "jobs_per_s": 300},
        {
            "peer": "peer_bench_adapter",
            "variant": "postgres",
            "mode": "drain",
            "workers": 2,
            "jobs_per_s": 900,
            "pss_mb": 80.0,
        },
        {
            "peer": "peer_bench_adapter",
            "variant": "postgres",
            "mode": "latency",
            "workers": 2,
            "p50_ms": 10,
            "p99_ms": 30,
            "lag_s": 0.01,
        },
        {"peer": "huey", "variant": "sqlite", "mode": "enqueue", "jobs_per_s": 600},
        {"peer": "huey", "variant": "sqlite", "mode": "bulk", "skipped": "no bulk API"},
        {"peer": "huey", "variant": "sqlite", "mode": "drain", "workers": 2, "jobs_per_s": 300, "pss_mb": 40.0},
        {"peer": "huey", "variant": "sqlite", "mode": "drain", "workers": 4, "error": "TimeoutError: drain"},
        {
            "peer": "huey",
            "variant": "sqlite",
            "mode": "latency",
            "workers": 2,
            "p50_ms": 2000,
            "p99_ms": 3000,
            "lag_s": 2.5,
        },
    ]
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines) + "not json\n")
    ratios = tmp_path / "ratios.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "peers.py"), str(results), "--json", str(ratios)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| huey / sqlite"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # enqueue, bulk, drain W=1/2/4, p50, p99, PSS
    assert cells[1:] == [
        "600 (0.5x)",
        "n/a",
        "-",
        "300 (3x)",
        "error",
        "2,000 (sat.) (0.005x)",
        "3,000 (sat.) (0.01x)",
        "40 (2x)",
    ]
    doc = json.loads(ratios.read_text())
    assert doc["ratios"]["errands/postgres vs huey/sqlite"]["drain W=2 j/s"] == 3.0
