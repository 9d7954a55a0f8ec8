"""Grid sync of one hour of station data, vectorized, against a per-message Python matcher.

Data: 4 cameras at 30 Hz (timing jitter, 1% drops) and 2 force/torque sensors at 1 kHz (6
channels), aligned onto a 30 Hz grid: cameras take the nearest frame within tolerance, sensors
are interpolated. The baseline does the same job the way ROS message_filters'
ApproximateTimeSynchronizer does it in Python: one message at a time into bounded per-topic
queues (`{stamp: msg}`, evicting `min(queue)` when full), and for each tick, a scan of every
queue for the candidates within the slop, the closest winning. (It skips ATS's search over
combinations of messages, so it is faster than ATS and the ratio is conservative.) It is too slow
to run on a whole hour in a benchmark, so both run on the same slice for the ratio, the vectorized
one also on the hour; `tests/test_quality_benchmarks.py` checks both give the same result.

Run: `python -m pytest benchmarks/test_sync.py` (results in benchmarks/results/sync.json).
"""

from __future__ import annotations

import heapq
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collector.sync import align_to_grid

RESULTS = Path(__file__).parent / "results"
CONTROL_HZ = 30.0
PERIOD_NS = round(1e9 / CONTROL_HZ)
CAMERA_TOL_NS = int((0.5 / 30 + 0.005) * 1e9)  # as perception plans a 30 fps camera
SENSOR_TOL_NS = int(max(3 / 1000, 0.5 / CONTROL_HZ) * 1e9)  # and a 1 kHz sensor
SLICE_S = 60.0


@dataclass
class Stream:
    name: str
    method: str  # nearest | interpolate
    tolerance_ns: int
    times: np.ndarray
    values: np.ndarray


def station_data(seconds: float, seed: int = 0) -> tuple[list[Stream], np.ndarray]:
    """Timestamps and values of 4 cameras and 2 sensors over `seconds`, and the grid."""
    rng = np.random.default_rng(seed)
    streams = []
    for c in range(4):
        n = int(seconds * 30)
        t = (np.arange(n) * (1e9 / 30) + rng.uniform(0, 33e6) + rng.normal(0, 2e6, n))
        keep = rng.random(n) > 0.01
        times = np.sort(t[keep].astype(np.int64))
        streams.append(Stream(f"cam{c}", "nearest", CAMERA_TOL_NS, times,
                              np.flatnonzero(keep).astype(np.int64)))  # frame index
    for s in range(2):
        n = int(seconds * 1000)
        times = (np.arange(n) * 1_000_000 + rng.integers(0, 1_000_000)).astype(np.int64)
        streams.append(Stream(f"ft{s}", "interpolate", SENSOR_TOL_NS, times,
                              rng.normal(size=(n, 6)).astype(np.float32)))
    grid = np.arange(int(seconds * CONTROL_HZ), dtype=np.int64) * PERIOD_NS + 50_000_000
    return streams, grid[grid < int(seconds * 1e9) - 50_000_000]


def sync_vectorized(streams: list[Stream], grid: np.ndarray) -> dict:
    """What perception does per stream: `align_to_grid` over whole arrays."""
    out = {}
    for s in streams:
        aligned = align_to_grid(s.times, {"v": s.values}, grid, s.method, s.tolerance_ns,
                                PERIOD_NS)
        out[s.name] = (aligned.values["v"], aligned.missing)
    return out


class ApproximateGridMatcher:
    """Per-message matching in the style of message_filters.ApproximateTimeSynchronizer."""

    def __init__(self, topics: dict[str, tuple[str, int]], queue_size: dict[str, int]):
        self.topics = topics  # name -> (method, slop in ns)
        self.queue_size = queue_size
        self.queues: dict[str, dict[int, object]] = {t: {} for t in topics}

    def add(self, topic: str, stamp: int, msg) -> None:
        queue = self.queues[topic]
        queue[stamp] = msg
        while len(queue) > self.queue_size[topic]:
            del queue[min(queue)]  # as ApproximateTimeSynchronizer.add does

    def match(self, tick: int) -> dict:
        out = {}
        for topic, queue in self.queues.items():
            method, slop = self.topics[topic]
            candidates = sorted((abs(s - tick), s) for s in queue)
            if not candidates or candidates[0][0] > slop:
                out[topic] = None
            elif method == "nearest":
                out[topic] = queue[candidates[0][1]]
            else:
                before = [s for s in queue if s < tick]
                after = [s for s in queue if s >= tick]
                if not before or not after:
                    out[topic] = queue[candidates[0][1]]
                    continue
                a, b = max(before), min(after)
                w = (tick - a) / (b - a)
                out[topic] = queue[a] + (queue[b] - queue[a]) * w
        return out


def _messages(stream: Stream):
    for i, t in enumerate(stream.times.tolist()):
        yield t, stream.name, i


def sync_per_message(streams: list[Stream], grid: np.ndarray) -> dict:
    """Feed every message in time order; decide a tick once messages have passed its slop."""
    matcher = ApproximateGridMatcher(
        {s.name: (s.method, s.tolerance_ns) for s in streams},
        {s.name: 10 if s.method == "nearest" else 100 for s in streams})
    horizon = max(s.tolerance_ns for s in streams)
    messages = heapq.merge(*[_messages(s) for s in streams])
    values = {s.name: s.values for s in streams}
    decided: dict[str, list] = {s.name: [] for s in streams}
    tick = 0
    for stamp, topic, i in messages:
        while tick < len(grid) and stamp > grid[tick] + horizon:
            for name, msg in matcher.match(int(grid[tick])).items():
                decided[name].append(msg)
            tick += 1
        matcher.add(topic, stamp, values[topic][i])
    while tick < len(grid):
        for name, msg in matcher.match(int(grid[tick])).items():
            decided[name].append(msg)
        tick += 1
    return decided


def best_of(fn, *args, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - started)
    return best


def write_result(name: str, data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


def test_sync_one_hour_vs_per_message_matcher(benchmark):
    if benchmark.disabled:  # smoke run: the code path once on a short slice, no timings
        part, part_grid = station_data(5.0)
        sync_vectorized(part, part_grid)
        sync_per_message(part, part_grid)
        return
    hour, hour_grid = station_data(3600.0)
    part, part_grid = station_data(SLICE_S)
    per_message_s = best_of(sync_per_message, part, part_grid, rounds=1)
    vectorized_slice_s = best_of(sync_vectorized, part, part_grid, rounds=5)
    benchmark.pedantic(sync_vectorized, args=(hour, hour_grid), rounds=3, iterations=1)
    hour_s = benchmark.stats.stats.min
    ratio = per_message_s / vectorized_slice_s
    messages = sum(len(s.times) for s in hour)
    write_result("sync", {
        "data": "4 cameras @30 Hz + 2 sensors @1 kHz (6 ch) onto a 30 Hz grid",
        "hour_messages": messages, "hour_ticks": len(hour_grid),
        "vectorized_hour_s": round(hour_s, 4),
        "slice_s": SLICE_S,
        "per_message_slice_s": round(per_message_s, 4),
        "vectorized_slice_s": round(vectorized_slice_s, 6),
        "speedup_same_slice": round(ratio, 1),
        "per_message_hour_s_extrapolated": round(per_message_s * 3600 / SLICE_S, 1),
        "speedup_hour_vs_extrapolated": round(per_message_s * 3600 / SLICE_S / hour_s, 1),
    })
    assert ratio >= 100, f"only {ratio:.0f}x faster than the per-message matcher"
    assert hour_s < 1.0, f"one hour took {hour_s:.2f} s"
