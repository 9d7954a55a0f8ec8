"""Fault injection shared by the simulated devices: which samples to drop, freeze, blur..."""

from __future__ import annotations

import numpy as np

from schemas.devices import Faults


class FaultPlan:
    """Draws the faults of a simulated device from its config, reproducibly (seeded)."""

    def __init__(self, faults: Faults, salt: int = 0):
        self.faults = faults
        self.rng = np.random.default_rng([faults.seed, salt])
        self.opened_ns: int | None = None

    def draw(self, n: int, rate: float) -> np.ndarray:
        """Boolean mask of n samples, each True with probability `rate`."""
        if rate <= 0:
            return np.zeros(n, bool)
        return self.rng.random(n) < rate

    def device_clock(self, t_ns: np.ndarray | int) -> np.ndarray:
        """The device's own clock for host time t: offset and drift, as a real device has."""
        f = self.faults
        t = np.asarray(t_ns, np.int64)
        drift = (t.astype(np.float64) * f.clock_drift_ppm * 1e-6).astype(np.int64)
        return t + int(f.clock_offset_ms * 1e6) + drift

    def arrival_delay_ns(self, n: int) -> np.ndarray:
        f = self.faults
        jitter = np.abs(self.rng.normal(0.0, f.jitter_ms, n)) if f.jitter_ms else np.zeros(n)
        return ((f.latency_ms + jitter) * 1e6).astype(np.int64)

    def disconnected(self, now_ns: int) -> bool:
        f = self.faults
        if f.disconnect_at_s is None or self.opened_ns is None:
            return False
        since = (now_ns - self.opened_ns) / 1e9
        return f.disconnect_at_s <= since < f.disconnect_at_s + f.disconnect_for_s
