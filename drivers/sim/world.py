"""The simulated scene every simulated device shares: an arm, its gripper and one object."""

from __future__ import annotations

import threading
import time
from typing import cast

import numpy as np

HOME = np.array([0.0, -0.6, 1.2, 0.0, 0.4, 0.0])


class SimWorld:
    """State of the simulated station, updated by the arm and read by cameras and sensors.

    Time is the host monotonic clock in ns. The arm follows its commanded joint target with a
    first-order lag; when the gripper is closed near the object, the object is carried.
    """

    lag_s = 0.08  # time constant of the arm's position controller

    def __init__(self, joints: int = 6):
        n = joints
        self.lock = threading.Lock()
        self.qpos = np.resize(HOME, n).astype(np.float64)
        self.target = self.qpos.copy()
        self.gripper = 0.0  # 0 open, 1 closed
        self.gripper_target = 0.0
        self.object_xy = np.array([0.35, 0.0])
        self.carried = False
        self._t_ns = time.monotonic_ns()

    def command(self, target: np.ndarray, gripper: float) -> None:
        with self.lock:
            self.target = np.asarray(target, np.float64).copy()
            self.gripper_target = float(gripper)

    def step_to(self, t_ns: np.ndarray) -> np.ndarray:
        """Advance the arm through the sample times `t_ns` (sorted); return qpos at each, (n, J)."""
        with self.lock:
            dt = np.diff(np.concatenate([[self._t_ns], t_ns])).clip(min=0) / 1e9
            alpha = np.exp(-np.cumsum(dt) / self.lag_s)[:, None]
            q = self.target + (self.qpos - self.target) * alpha  # exact lag response, vectorized
            if len(t_ns):
                self.qpos = q[-1].copy()
                self._t_ns = int(t_ns[-1])
                decay = float(alpha[-1, 0])
                self.gripper = self.gripper_target + (self.gripper - self.gripper_target) * decay
                self._update_object()
            return cast(np.ndarray, q)  # numpy types the broadcast arithmetic as Any

    def _update_object(self) -> None:
        tip = self.tip_xy()
        if self.gripper > 0.7 and np.linalg.norm(tip - self.object_xy) < 0.08:
            self.carried = True
        if self.gripper < 0.3:
            self.carried = False
        if self.carried:
            self.object_xy = tip.copy()

    def tip_xy(self) -> np.ndarray:
        """Planar forward kinematics of the first three joints (reach in metres)."""
        links = (0.3, 0.25, 0.15)
        angle = np.cumsum(self.qpos[:3] if len(self.qpos) >= 3 else self.qpos)
        x = sum(length * np.cos(a) for length, a in zip(links, angle, strict=False))
        z = sum(length * np.sin(a) for length, a in zip(links, angle, strict=False))
        return np.array([x, z])

    def snapshot(self) -> tuple[np.ndarray, float, np.ndarray, bool]:
        with self.lock:
            return self.qpos.copy(), self.gripper, self.object_xy.copy(), self.carried


SKIP_AHEAD_S = 0.5  # a paced loop this late (a stalled host) skips the missed ticks


class Pacer:
    """Wakes a capture loop at a fixed rate on the host monotonic clock, or never (max mode)."""

    def __init__(self, rate_hz: float, realtime: bool = True):
        self.period_ns = int(1e9 / rate_hz)
        self.realtime = realtime
        self.next_ns = time.monotonic_ns()

    def wait(self, stop: threading.Event) -> int:
        """Sleep until the next tick (unless it is already late); return that tick's time.

        Max mode never sleeps, and never stamps a sample later than now: a clock that ran ahead
        of the host would put samples past the episode's end, where the grid never uses them.
        """
        if not self.realtime:
            now = time.monotonic_ns()
            self.next_ns = now + self.period_ns
            return now
        due = self.next_ns
        self.next_ns += self.period_ns
        if self.realtime:
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                stop.wait(delay)
            elif delay < -SKIP_AHEAD_S:  # far behind (debugger, overload): skip, don't burst
                self.next_ns = time.monotonic_ns() + self.period_ns
        return due
