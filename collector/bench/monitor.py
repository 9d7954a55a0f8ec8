"""CPU and resident memory of every process of the station (Ray workers included), over time."""

from __future__ import annotations

import threading
import time

import numpy as np
import psutil

from schemas.bench import Point

MAX_POINTS = 1200  # the series halves its resolution rather than grow past this
# Resident memory is read this often, CPU at every sample: PSS comes from each process's
# smaps_rollup, which costs ~10 ms per Ray worker (at 0.5 s intervals, a tenth of a core that
# the bench would then count as the station's)
MEMORY_EVERY_S = 5.0


class ResourceMonitor:
    """Samples this process and all its descendants on a timer into a bounded series.

    The CPU counted is the station's: the monitor's own thread (which runs in the station's
    driver process) is left out of every figure."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.points: list[Point] = []
        self.cpu_s = 0.0  # CPU-seconds of every station process, start to stop
        self._cpu_times: dict[int, float] = {}  # pid -> its CPU-seconds at the last sample
        self._procs: dict[int, psutil.Process] = {}
        self._own_s = 0.0  # this thread's CPU-seconds at the last sample
        self._rss = 0.0
        self._rss_at = -MEMORY_EVERY_S
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._t0 = 0.0
        self._last = 0.0

    def start(self) -> None:
        self._t0 = self._last = time.monotonic()
        self._sample()  # the CPU times every later sample is counted from
        self.cpu_s = 0.0
        self._thread.start()

    def stop(self) -> list[Point]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.points

    def _run(self) -> None:
        self._own_s = time.thread_time()
        while not self._stop.wait(self.interval_s):
            self.points.append(self._sample())
            if len(self.points) >= MAX_POINTS:
                self.points = self.points[::2]
                self.interval_s *= 2

    def _sample(self) -> Point:
        root = psutil.Process()
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            procs = [root]
        now = time.monotonic()
        read_memory = now - self._rss_at >= MEMORY_EVERY_S
        used = rss = 0.0
        alive, times = {}, {}
        for p in procs:
            known = self._procs.get(p.pid, p)
            try:
                t = known.cpu_times()
                total = t.user + t.system
                if read_memory:
                    rss += _resident(known)
            except psutil.Error:
                continue
            # a process first seen now is counted from now (its earlier CPU was start-up)
            used += total - self._cpu_times.get(p.pid, total)
            alive[p.pid], times[p.pid] = known, total
        self._procs, self._cpu_times = alive, times
        if threading.current_thread() is self._thread:  # leave the monitor's own CPU out
            own = time.thread_time()
            used -= own - self._own_s
            self._own_s = own
        used = max(used, 0.0)
        self.cpu_s += used
        if read_memory:
            self._rss, self._rss_at = rss, now
        span, self._last = now - self._last, now
        return Point(t_s=round(now - self._t0, 3),
                     cpu_percent=round(100 * used / span, 1) if span > 0 else 0.0,
                     rss_mb=round(self._rss / 2**20, 1), processes=len(alive))


def _resident(p: psutil.Process) -> int:
    """Proportional set size: shared pages (Ray's object store is mapped into every worker)
    split among the processes that map them, so the sum over processes counts them once."""
    try:
        return p.memory_full_info().pss
    except (psutil.AccessDenied, AttributeError):
        return p.memory_info().rss


def rss_growth(points: list[Point], warmup_s: float) -> float:
    """Relative growth of RSS from just after warm-up to the end (medians of 5 s windows)."""
    t = np.array([p.t_s for p in points])
    rss = np.array([p.rss_mb for p in points])
    if len(t) < 2:
        return 0.0
    after = t >= warmup_s
    if not after.any():
        after[-1] = True
    start = t[after][0]
    base = np.median(rss[after & (t <= start + 5.0)])
    end = np.median(rss[t >= t[-1] - 5.0])
    return float(end / base - 1.0) if base > 0 else 0.0
