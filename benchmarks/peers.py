#!/usr/bin/env python
"""errands beside every peer of ../shared/peer-bench, with ratios errands / peer per measurement.

    .venv/bin/python benchmarks/peers.py /tmp/peer-bench/results/20260101-120000.jsonl
    .venv/bin/python benchmarks/peers.py --latest /tmp/peer-bench/results     # the newest .jsonl there

Reads the JSON lines peer-bench's run_all.sh writes (one bench.py run per line). errands is the peer named
after its adapter file (peer_bench_adapter); there is one table per errands variant (postgres, sqlite,
mariadb). Measurements: enqueue and bulk jobs/s; drain jobs/s (incl. worker start-up) at W=1, 2, 4; pickup
latency p50 and p99 at W=2 (100 jobs/s for 10 s by default); peak PSS of the worker tree during the W=2
drain. A cell is "peer value (errands / peer)": above 1 errands is faster for throughput, but slower for
latency and heavier for PSS (the headers say which way is better). Repeated lines are reduced to medians.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

OURS = "peer_bench_adapter"

# (header, mode, workers, field, higher is better)
MEASURES: list[tuple[str, str, int | None, str, bool]] = [
    ("enqueue j/s", "enqueue", None, "jobs_per_s", True),
    ("bulk j/s", "bulk", None, "jobs_per_s", True),
    ("drain W=1 j/s", "drain", 1, "jobs_per_s", True),
    ("drain W=2 j/s", "drain", 2, "jobs_per_s", True),
    ("drain W=4 j/s", "drain", 4, "jobs_per_s", True),
    ("p50 ms (W=2)", "latency", 2, "p50_ms", False),
    ("p99 ms (W=2)", "latency", 2, "p99_ms", False),
    ("PSS MB (W=2 drain)", "drain", 2, "pss_mb", False),
]


def load(paths: list[str]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        print(f"peers.py: skipping a malformed line in {path}: {line[:80]}", file=sys.stderr)
    return rows


Cell = float | str | None  # a number, "n/a" (skipped), "error: ...", or None (not measured)


def values(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Cell]]:
    """(peer, variant) -> header -> the median over that peer's matching lines (or why there is none)."""
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((str(r.get("peer")), str(r.get("variant") or "")), []).append(r)
    out: dict[tuple[str, str], dict[str, Cell]] = {}
    for key, runs in by.items():
        cells: dict[str, Cell] = {}
        for header, mode, workers, fld, _ in MEASURES:
            match = [r for r in runs if r.get("mode") == mode and (workers is None or r.get("workers") == workers)]
            nums = [float(r[fld]) for r in match if "error" not in r and isinstance(r.get(fld), int | float)]
            if nums:
                cells[header] = statistics.median(nums)
                if mode == "latency" and any(r.get("lag_s", 0) > 0.5 for r in match if "error" not in r):
                    cells[header + " saturated"] = "yes"
            elif any("skipped" in r for r in match):
                cells[header] = "n/a"
            elif match:
                cells[header] = "error: " + str(next((r["error"] for r in match if "error" in r), "no value"))
            else:
                cells[header] = None
        out[key] = cells
    return out


def fmt(value: Cell, saturated: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return "error" if value.startswith("error") else value
    text = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return text + (" (sat.)" if saturated else "")


def ratio(ours: Cell, theirs: Cell) -> str:
    if isinstance(ours, float) and isinstance(theirs, float) and theirs > 0:
        r = ours / theirs
        return f"{r:.0f}x" if r >= 100 else f"{r:.3g}x" if r >= 0.1 else f"{r:.2g}x"
    return "-"


def tables(vals: dict[tuple[str, str], dict[str, Cell]], ours_name: str) -> str:
    ours = [k for k in vals if k[0] == ours_name]
    peers = [k for k in vals if k[0] != ours_name]
    if not ours:
        return f"no errands lines (peer {ours_name!r}) in the input; peers seen: {sorted({k[0] for k in vals})}"
    heads = [f"{h} {'↑' if up else '↓'}" for h, _, _, _, up in MEASURES]
    out = []
    for key in ours:
        mine = vals[key]
        out += [
            f"### errands / {key[1]} beside each peer: peer value (errands / peer)",
            "",
            "| peer / variant | " + " | ".join(heads) + " |",
            "|---|" + "---|" * len(heads),
        ]
        sat: Callable[[dict[str, Cell], str], bool] = lambda c, h: c.get(h + " saturated") == "yes"  # noqa: E731
        out.append(
            f"| **errands / {key[1]}** | "
            + " | ".join(f"**{fmt(mine.get(h), sat(mine, h))}**" for h, *_ in MEASURES)
            + " |"
        )
        for peer in peers:
            theirs = vals[peer]
            cells = []
            for h, *_ in MEASURES:
                value = fmt(theirs.get(h), sat(theirs, h))
                r = ratio(mine.get(h), theirs.get(h))
                cells.append(value if r == "-" else f"{value} ({r})")
            out.append(f"| {peer[0]} / {peer[1]} | " + " | ".join(cells) + " |")
        out.append("")
    out.append(
        "↑ higher is better, ↓ lower is better; (errands / peer) above 1 means errands has the larger number. "
        "(sat.): lag > 0.5 s, the workers could not keep up and the latency is queueing. "
        "On 2 shared cores, treat ratios between ~0.77 and ~1.3 as noise."
    )
    errors = [
        f"- {k[0]} / {k[1]} {h}: {v}"
        for k, cells in vals.items()
        for h, v in cells.items()
        if isinstance(v, str) and v.startswith("error")
    ]
    if errors:
        out += ["", "Errors:", *errors]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", nargs="*", help="peer-bench results .jsonl file(s)")
    ap.add_argument("--latest", metavar="DIR", help="use the newest .jsonl in DIR")
    ap.add_argument("--since", type=float, default=0, help="with --latest: only a file modified after this epoch")
    ap.add_argument("--ours", default=OURS, help=f"errands' peer name in the lines (default {OURS})")
    ap.add_argument("--json", metavar="PATH", help="also write the values and ratios as JSON")
    args = ap.parse_args(argv)
    paths = list(args.jsonl)
    if args.latest:
        found = [p for p in glob.glob(os.path.join(args.latest, "*.jsonl")) if os.path.getmtime(p) > args.since]
        if not found:
            since = f" modified after {time.ctime(args.since)}" if args.since else ""
            print(f"peers.py: no .jsonl in {args.latest}{since}", file=sys.stderr)
            return 1
        paths.append(max(found, key=os.path.getmtime))
    if not paths:
        ap.error("give a .jsonl file or --latest DIR")
    rows = load(paths)
    vals = values(rows)
    print(f"peer-bench results: {', '.join(paths)}")
    md = [p.removesuffix(".jsonl") + ".md" for p in paths if os.path.exists(p.removesuffix(".jsonl") + ".md")]
    if md:
        print(f"(machine details and the full report: {', '.join(md)})")
    print()
    print(tables(vals, args.ours))
    if args.json:
        doc = {
            "inputs": paths,
            "values": {f"{k[0]}/{k[1]}": v for k, v in vals.items()},
            "ratios": {
                f"errands/{o[1]} vs {p[0]}/{p[1]}": {
                    h: vals[o][h] / vals[p][h]  # type: ignore[operator]
                    for h, *_ in MEASURES
                    if isinstance(vals[o].get(h), float) and isinstance(vals[p].get(h), float) and vals[p][h]
                }
                for o in vals
                if o[0] == args.ours
                for p in vals
                if p[0] != args.ours
            },
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0 if any(k[0] == args.ours for k in vals) else 1


if __name__ == "__main__":
    sys.exit(main())
