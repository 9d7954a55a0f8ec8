"""CPU and resident memory of every process of the station (Ray workers included), over time."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from drivers.thread_names import SIMULATED_THREAD_PREFIX
from schemas.bench import Point

MAX_POINTS = 1200  # the series halves its resolution rather than grow past this
# Resident memory is read this often, CPU at every sample: PSS comes from each process's
# smaps_rollup, which costs ~10 ms per Ray worker (at 0.5 s intervals, a tenth of a core that
# the bench would then count as the station's)
MEMORY_EVERY_S = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc stat's unit
RAY_WORKER_TITLE = "ray::"  # a Ray worker's process title: ray::<actor class>[.<method>]


class ResourceMonitor:
    """Samples this process and all its descendants on a timer into a bounded series.

    The CPU counted is the station's: the monitor's own thread (which runs in the station's
    driver process) is left out of every figure. Of that, `simulated_s` is what the threads of
    simulated hardware took (named `sim-*` to the OS, drivers/thread_names.py): a real serial
    device's firmware does not run on the station's host. Such threads are looked for as
    often as memory is read; one found later is counted from then on."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.points: list[Point] = []
        self.cpu_s = 0.0  # CPU-seconds of every station process, start to stop
        self.simulated_s = 0.0  # of which the simulated devices' threads
        self.cpu_by_process: dict[str, float] = {}  # role -> its CPU-seconds, summing to cpu_s
        self._roles: dict[int, str] = {}  # pid -> its role, read again as often as memory
        self._simulated: dict[tuple[int, int], float] = {}  # (pid, tid) -> its CPU-s last sample
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
        self.cpu_s = self.simulated_s = 0.0
        self.cpu_by_process = {}
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
        by_role: dict[str, float] = {}
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
            spent = total - self._cpu_times.get(p.pid, total)
            used += spent
            # a Ray worker takes its actor's title after it starts: roles are read again
            if read_memory or p.pid not in self._roles:
                self._roles[p.pid] = process_role(known, root.pid)
            role = self._roles[p.pid]
            by_role[role] = by_role.get(role, 0.0) + spent
            alive[p.pid], times[p.pid] = known, total
        self._procs, self._cpu_times = alive, times
        self._roles = {pid: role for pid, role in self._roles.items() if pid in alive}
        self.simulated_s += self._simulated_cpu(alive, discover=read_memory)
        if threading.current_thread() is self._thread:  # leave the monitor's own CPU out
            own = time.thread_time()
            monitor_s, self._own_s = own - self._own_s, own
            used -= monitor_s
            by_role[DRIVER] = by_role.get(DRIVER, 0.0) - monitor_s
        used = max(used, 0.0)
        self.cpu_s += used
        # not clamped per sample: /proc counts a process in clock ticks and the monitor's own
        # thread in ns, so one sample's driver share can dip below zero and the next make it up
        for role, spent in by_role.items():
            self.cpu_by_process[role] = self.cpu_by_process.get(role, 0.0) + spent
        if read_memory:
            self._rss, self._rss_at = rss, now
        span, self._last = now - self._last, now
        return Point(t_s=round(now - self._t0, 3),
                     cpu_percent=round(100 * used / span, 1) if span > 0 else 0.0,
                     rss_mb=round(self._rss / 2**20, 1), processes=len(alive))

    def _simulated_cpu(self, procs: dict[int, psutil.Process], discover: bool) -> float:
        """CPU-seconds the simulated devices' threads took since the last sample."""
        known = dict(self._simulated)
        if discover:
            for pid in procs:
                for tid in _simulated_threads(pid):
                    known.setdefault((pid, tid), -1.0)  # -1: first seen, counted from now
        used, now = 0.0, {}
        for (pid, tid), before in known.items():
            spent = _thread_cpu_s(pid, tid)
            if spent is None:
                continue  # ended: what it took since the last sample stays the station's
            if before >= 0:
                used += max(spent - before, 0.0)
            now[(pid, tid)] = spent
        self._simulated = now
        return used


DRIVER = "driver"  # the process the station runs in (`collector record`, `bench`, `run`)
RAY_DAEMONS = "ray daemons"


def process_role(p: psutil.Process, driver_pid: int) -> str:
    """What a station process is, in the pipeline's words: `driver`; a Ray actor by its stage
    (its title `ray::_CaptureActor.read_batch` -> `capture`); `ray daemons` (raylet, GCS,
    agents, log monitor, our watchdog); `other` for anything else the station started."""
    if p.pid == driver_pid:
        return DRIVER
    try:
        cmdline = p.cmdline()
    except psutil.Error:
        return "other"
    title = cmdline[0] if cmdline else ""
    if title.startswith(RAY_WORKER_TITLE):
        name = title[len(RAY_WORKER_TITLE):].split(".")[0].split(" ")[0]
        if name.startswith("_"):  # one of the engine's stage actors: _CaptureActor...
            return name.strip("_").removesuffix("Actor").lower()
        # ray::IDLE is a worker with no actor yet; ray::DashboardAgent and the like are Ray's
        return "ray worker (idle)" if name == "IDLE" else RAY_DAEMONS
    # Ray's own processes, and the watchdog that ends them (collector/engines/ray_watchdog.py)
    if any("/ray/" in part or part.endswith("ray_watchdog.py") for part in cmdline):
        return RAY_DAEMONS
    return "other"


def _simulated_threads(pid: int) -> list[int]:
    """The threads of process `pid` that simulate hardware, by the name the OS knows."""
    try:
        tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except (OSError, ValueError):
        return []
    found = []
    for tid in tids:
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text(errors="replace")
        except OSError:
            continue
        if name.startswith(SIMULATED_THREAD_PREFIX):
            found.append(tid)
    return found


def _thread_cpu_s(pid: int, tid: int) -> float | None:
    """User + system CPU-seconds of one thread (None: it has ended)."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: stat(5) 14, 15


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
