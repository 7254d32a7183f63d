"""The benchmark's machine description and its markdown tables."""

from __future__ import annotations

import contextlib
import datetime
import glob
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from typing import Any

PACKAGES = ("errands", "sqlalchemy", "alembic", "psycopg", "psycopg-binary", "pymysql")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def mem_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def git_state(repo: str) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"


def source_digest(repo: str) -> str:
    """A digest of src/errands: workers import the working tree (editable install), so an edit made while the
    bench runs changes what later measurements measure. Compared at start and end."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(repo, "src", "errands", "**", "*.py"), recursive=True)):
        digest.update(path.encode())
        with contextlib.suppress(OSError), open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


def versions() -> dict[str, str]:
    out = {}
    for dist in PACKAGES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine(repo: str, servers: dict[str, str]) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "ram_gib": round(mem_gib(), 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "servers": servers,
        "packages": versions(),
        "errands_git": git_state(repo),
        "errands_source_digest": source_digest(repo),
        "argv": sys.argv[1:],
    }


# markdown --------------------------------------------------------------------------------------------------


def _spread(m: dict[str, Any], key: str) -> str:
    spread = m.get("spread", {}).get(key)
    return f" ±{spread * 50:.0f}%" if spread else ""


def _cell(m: dict[str, Any] | None, fmt: Any) -> str:
    if m is None:
        return "-"
    if "error" in m:  # every run failed
        partial = m.get("partial_jobs_per_s")
        return "error" + (f" (≈{partial:g} j/s before it)" if partial else "")
    try:
        text: str = fmt(m)
    except KeyError:
        return "error"
    if m.get("errors"):
        text += f" ({m['errors']} of {len(m.get('runs', []))} runs failed)"
    return text


def _throughput(m: dict[str, Any]) -> str:
    return f"{m['jobs_per_s']:,.0f}{_spread(m, 'jobs_per_s')}"


def _drain(m: dict[str, Any]) -> str:
    return f"{m['jobs_per_s']:,.0f}{_spread(m, 'jobs_per_s')} (steady {m['steady_jobs_per_s']:,.0f})"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _latency(m: dict[str, Any]) -> str:
    text = " / ".join(_ms(m[k]) for k in ("p50_ms", "p95_ms", "p99_ms"))
    if m.get("saturated") or m.get("lag_s", 0) > 0.5:
        text += f" ({'saturated, ' if m.get('saturated') else ''}lag {m['lag_s']:.2f} s)"
    if m.get("achieved_rate") and m.get("rate") and m["achieved_rate"] < 0.9 * m["rate"]:
        text += f" (enqueued only {m['achieved_rate']:,.0f}/s)"
    return text


ROWS: list[tuple[str, str, Any]] = [
    ("enqueue, one per call (jobs/s)", "enqueue", _throughput),
    ("enqueue_many, 500 per call (jobs/s)", "bulk", _throughput),
    ("drain W=1 (jobs/s incl. start-up)", "drain_w1", _drain),
    ("drain W=2", "drain_w2", _drain),
    ("drain W=4", "drain_w4", _drain),
    ("worker start-up, W=2 (s)", "drain_w2", lambda m: f"{m['startup_s']:.2f}"),
    ("latency idle, 10 jobs/s: p50 / p95 / p99 ms", "latency_idle", _latency),
    ("latency 100 jobs/s: p50 / p95 / p99 ms", "latency_100", _latency),
    ("latency 1,000 jobs/s: p50 / p95 / p99 ms", "latency_1000", _latency),
    (
        "worker memory W=2: peak RSS / PSS MB (procs)",
        "memory_w2",
        lambda m: f"{m['rss_mb']:.0f} / {m['pss_mb']:.0f} ({m['procs']:.0f})",
    ),
]


def _api_table(backend: str, api: dict[str, Any] | None) -> list[str]:
    """The HTTP API's latency per route (api_bench.py), or why it was not measured."""
    if not api:
        return []
    if "skipped" in api or "routes" not in api:
        return ["", f"HTTP API ({backend}): {api.get('skipped') or api.get('error', 'no result')}"]
    lines = [
        "",
        f"HTTP API over {api['jobs']:,} jobs ({backend}; `errands serve`, one request at a time, "
        f"{api['rounds']} per route; ms):",
        "",
        "| route | p50 | p90 | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for name, m in api["routes"].items():
        status = f" (answered {m['statuses']})" if "statuses" in m else ""
        lines.append(
            f"| {name}{status} | {_ms(m['p50_ms'])} | {_ms(m['p90_ms'])} | {_ms(m['p99_ms'])} | {_ms(m['max_ms'])} |"
        )
    if api.get("over_target"):
        lines += ["", "Over target: " + "; ".join(api["over_target"])]
    return lines


def markdown(doc: dict[str, Any]) -> str:
    results: dict[str, dict[str, Any]] = doc["results"]
    backends = list(results)
    m = doc["machine"]
    lines = [
        f"errands benchmark, {m['date']}: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gib']:g} GiB RAM, "
        f"{m['python']}, errands {m['packages'].get('errands')} ({m['errands_git']}), "
        f"load average at start {' '.join(map(str, m['load_average_at_start']))}"
        + (f", at end {' '.join(map(str, m['load_average_at_end']))}" if m.get("load_average_at_end") else ""),
        f"sizes: {doc['sizes_text']}; medians of {doc['runs']} run(s), ±x% = half the min-max spread",
        "",
        "| measurement | " + " | ".join(backends) + " |",
        "|---|" + "---|" * len(backends),
    ]
    for label, key, fmt in ROWS:
        cells = []
        for backend in backends:
            r = results[backend]
            cells.append("unreachable" if "error" in r and len(r) == 1 else _cell(r.get(key), fmt))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for backend in backends:
        backlog = results[backend].get("backlog")
        if not backlog:
            continue
        lines += [
            "",
            f"Drain speed as the backlog grows ({backend}, W=2, the first {doc['sizes']['backlog_drain']:,} jobs):",
            "",
            "| pending rows | jobs/s incl. start-up | steady jobs/s | ratio to the smallest backlog |",
            "|---|---|---|---|",
        ]
        for size, entry in backlog.items():
            lines.append(
                f"| {int(size):,} | {_cell(entry, _throughput)} | "
                f"{_cell(entry, lambda m: format(m['steady_jobs_per_s'], ',.0f'))} | "
                f"{_cell(entry, lambda m: format(m['ratio'], '.2f'))} |"
            )
    for backend in backends:
        lines += _api_table(backend, results[backend].get("api"))
    if m.get("source_changed_during_run"):
        lines += [
            "",
            "**Warning: src/errands changed while the bench ran** (digest "
            f"{m['errands_source_digest']} -> {m['errands_source_digest_at_end']}, git {m['errands_git']} -> "
            f"{m.get('errands_git_at_end')}): the runs measured different code.",
        ]
    if doc.get("skipped_over_budget"):
        lines += ["", f"Not run (the --budget was spent): {', '.join(doc['skipped_over_budget'])}"]
    if doc.get("errors"):
        lines += ["", "Errors:"] + [f"- {e}" for e in doc["errors"]]
    return "\n".join(lines)
