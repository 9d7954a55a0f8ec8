"""Device clock -> host clock, per stream: a robust running linear fit of arrival vs device time.

A sample's arrival time is its capture time on the host clock plus a transport delay that is
never negative and jitters (USB frames, OS scheduling, bursts). The device clock runs with its
own offset and drift. So `arrival - device` over device time is a line (offset + drift) plus
non-negative noise, and its lower envelope is the line itself. `ClockMap` keeps, per bin of
device time, the sample with the smallest `arrival - device` (bounded memory: a fixed number of
bins), fits a line through those minima, rejects bins that sit clearly above the line (a burst
where every sample was late), refits, and maps device times through the line.
"""

from __future__ import annotations

import numpy as np

JUMP_NS = 500_000_000  # a device clock that jumps this far has restarted


class ClockMap:
    """Maps device timestamps (int64 ns) onto the host monotonic clock (int64 ns)."""

    def __init__(self, bin_s: float = 0.5, window_s: float = 60.0):
        self.bin_ns = int(bin_s * 1e9)
        self.bins = max(2, int(window_s / bin_s))
        self.reset()

    def reset(self) -> None:
        self._key = np.full(self.bins, np.iinfo(np.int64).min, np.int64)  # bin index held
        self._dev = np.zeros(self.bins, np.int64)  # device time of the bin's minimum
        self._delay = np.zeros(self.bins, np.int64)  # its arrival - device
        self._ref: int | None = None  # device time origin, keeps the fit well conditioned
        self._fit: tuple[float, float] | None = None  # delay = a + b * (device - ref)
        self._last_device = np.iinfo(np.int64).min

    def update(self, device_ns: np.ndarray, arrival_ns: np.ndarray) -> None:
        """Add samples (device time, arrival time); both int64 ns, same length."""
        if device_ns.size == 0:
            return
        if self._fit is not None:
            # A device clock that went backwards, or forward past the arrival time, restarted.
            # A late arrival (a starved reader thread) is no reason to refit: it is only delay.
            ahead = self._map_one(int(device_ns[-1])) - arrival_ns[-1]
            if ahead > JUMP_NS or device_ns[0] < self._last_device - JUMP_NS:
                self.reset()
        if self._ref is None:
            self._ref = int(device_ns[0])
        self._last_device = int(device_ns[-1])
        delay = arrival_ns - device_ns
        key = (device_ns - self._ref) // self.bin_ns
        # per-bin minimum of this block, vectorized: sort by (key, delay), take each key's first
        order = np.lexsort((delay, key))
        k, first = np.unique(key[order], return_index=True)
        best = order[first]
        slot = k % self.bins
        held = self._key[slot] == k
        better = ~held | (delay[best] < self._delay[slot])
        if not better.any() and self._fit is not None:
            return  # no bin's minimum moved: the fit stands
        slot, best, k = slot[better], best[better], k[better]
        self._key[slot] = k
        self._dev[slot] = device_ns[best]
        self._delay[slot] = delay[best]
        self._refit()

    def _refit(self) -> None:
        newest = self._key.max()
        use = self._key > newest - self.bins
        x = (self._dev[use] - self._ref).astype(np.float64)
        y = self._delay[use].astype(np.float64)
        if x.size < 3:
            self._fit = (float(y.min()), 0.0)
            return
        keep = np.ones(x.size, bool)
        for _ in range(3):
            a, b = _line(x[keep], y[keep])
            resid = y - (a + b * x)
            spread = 1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep])))
            new_keep = resid <= max(3.0 * spread, 1000.0)  # at least 1 us of slack
            if np.array_equal(new_keep, keep) or new_keep.sum() < 3:
                break
            keep = new_keep
        self._fit = (float(a), float(b))

    def _map_one(self, device_ns: int) -> int:
        # only called once fitted, and a fit always has its origin
        assert self._fit is not None and self._ref is not None
        a, b = self._fit
        return int(device_ns + a + b * (device_ns - self._ref))

    def map(self, device_ns: np.ndarray) -> np.ndarray:
        """Host capture times of device times; before any fit, device times unchanged."""
        if self._fit is None or self._ref is None:  # a fit always has its origin
            unchanged: np.ndarray = device_ns.copy()  # numpy types copy() as Any
            return unchanged
        a, b = self._fit
        x = (device_ns - self._ref).astype(np.float64)
        return device_ns + np.round(a + b * x).astype(np.int64)

    @property
    def drift_ppm(self) -> float:
        """Host seconds per device second, minus one, in ppm (from the fit)."""
        return 0.0 if self._fit is None else self._fit[1] * 1e6


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (a, b) of y = a + b x, in closed form (np.polyfit's SVD costs ~10x more,
    and this runs on every read of every stream)."""
    mx, my = x.mean(), y.mean()
    dx = x - mx
    var = float(dx @ dx)
    b = float(dx @ (y - my)) / var if var > 0 else 0.0
    return float(my - b * mx), b
