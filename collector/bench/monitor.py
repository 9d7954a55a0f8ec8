"""CPU and resident memory of every process of the station (Ray workers included), over time."""

from __future__ import annotations

import threading
import time

import numpy as np
import psutil

from schemas.bench import Point

MAX_POINTS = 1200  # the series halves its resolution rather than grow past this


class ResourceMonitor:
    """Samples this process and all its descendants on a timer into a bounded series."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.points: list[Point] = []
        self._procs: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._sample()  # primes cpu_percent, whose first reading per process is meaningless
        self._thread.start()

    def stop(self) -> list[Point]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.points

    def _run(self) -> None:
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
        cpu = rss = 0.0
        alive = {}
        for p in procs:
            known = self._procs.get(p.pid, p)
            try:
                cpu += known.cpu_percent(None)
                rss += _resident(known)
            except psutil.Error:
                continue
            alive[p.pid] = known
        self._procs = alive
        return Point(t_s=round(time.monotonic() - self._t0, 3), cpu_percent=round(cpu, 1),
                     rss_mb=round(rss / 2**20, 1), processes=len(alive))


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
