"""Shared by every micro benchmark: each fast path is timed beside its naive baseline, and the
session writes `benchmarks/results.json` with the ratio of each pair.

Convention: put the pair in one pytest-benchmark group and say which side is which,

    def test_encode_naive(benchmark):
        role(benchmark, "encode", "baseline")
        benchmark(naive, frames)

Tests without a role count as "fast" when their name lacks "naive"/"baseline". With
`--benchmark-disable` (the CI smoke run) nothing is timed and no results file is written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def role(benchmark, group: str, side: str) -> None:
    """Put this benchmark in `group` as its "baseline" or "fast" side."""
    assert side in ("baseline", "fast"), side
    benchmark.group = group
    benchmark.extra_info["role"] = side


def _side(bench) -> str:
    side = bench.extra_info.get("role")
    if side:
        return side
    name = bench.name.lower()
    return "baseline" if "naive" in name or "baseline" in name else "fast"


def pytest_sessionfinish(session, exitstatus) -> None:
    bs = getattr(session.config, "_benchmarksession", None)
    if bs is None or bs.disabled or not bs.benchmarks:
        return
    groups: dict[str, dict[str, list]] = {}
    for bench in bs.benchmarks:
        if not bench.stats or not bench.stats.rounds:
            continue
        group = bench.group or Path(str(bench.fullname).split("::")[0]).stem
        entry = {"name": bench.name, "median_s": bench.stats.median, "mean_s": bench.stats.mean,
                 "rounds": bench.stats.rounds, **{k: v for k, v in bench.extra_info.items()
                                                  if k != "role"}}
        groups.setdefault(group, {"baseline": [], "fast": []})[_side(bench)].append(entry)
    pairs = {}
    for group, sides in sorted(groups.items()):
        base = min((b["median_s"] for b in sides["baseline"]), default=None)
        pairs[group] = {
            **sides,
            # how many times faster each fast path is than the best baseline of its group
            "speedup": {f["name"]: base / f["median_s"] for f in sides["fast"]} if base else {},
        }
    RESULTS.write_text(json.dumps({
        "schema_version": 1,
        "taken_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "load_average": list(os.getloadavg())},
        "groups": pairs,
    }, indent=1) + "\n")
