"""Tasks command the arm during an episode; the commands are recorded as the `action` stream."""

from __future__ import annotations

import threading
import time

import numpy as np

from drivers.base import Capture, FieldInfo, StreamInfo, ThreadedDevice
from drivers.sim.world import HOME, Pacer

ACTION_STREAM = "action"


class PickPlaceTask:
    """A scripted pick-and-place: approach, grasp, lift, carry, place, release, return home.

    Waypoints are joint targets for the first three joints; the rest hold their home pose.
    Success is drawn at the end of each episode with `success_rate` (simulated stations only).
    """

    #            phase  j0     j1     j2    gripper
    WAYPOINTS = np.array([
        [0.00, 0.00, -0.60, 1.20, 0.0],
        [0.15, 0.35, -0.20, 0.80, 0.0],
        [0.30, 0.35, 0.05, 0.60, 0.0],
        [0.38, 0.35, 0.05, 0.60, 1.0],
        [0.50, 0.35, -0.30, 0.90, 1.0],
        [0.68, -0.35, -0.30, 0.90, 1.0],
        [0.78, -0.35, 0.05, 0.60, 1.0],
        [0.85, -0.35, 0.05, 0.60, 0.0],
        [1.00, 0.00, -0.60, 1.20, 0.0],
    ])

    def __init__(self, joints: int, success_rate: float = 1.0, seed: int = 0):
        self.joints = joints
        self.success_rate = success_rate
        self.rng = np.random.default_rng(seed)

    def target(self, phase: float) -> tuple[np.ndarray, float]:
        """Joint target and gripper closure at `phase` in [0, 1] of the episode."""
        w = self.WAYPOINTS
        phase = min(max(phase, 0.0), 1.0)
        first3 = [np.interp(phase, w[:, 0], w[:, 1 + j]) for j in range(3)]
        q = np.resize(HOME, self.joints).astype(np.float64)
        q[: min(3, self.joints)] = first3[: self.joints]
        gripper = float(np.interp(phase, w[:, 0], w[:, 4]))
        return q, gripper

    def succeeded(self) -> bool:
        return bool(self.rng.random() < self.success_rate)


class TaskRunner(ThreadedDevice):
    """Runs the task at the control rate while an episode records; between episodes, holds home.

    It is a device like any other so that the commands reach the episode through the same
    path, timestamps and grid alignment as every observation.
    """

    def __init__(self, arm, task: PickPlaceTask, control_hz: float, realtime: bool = True):
        joints = task.joints
        super().__init__(StreamInfo(ACTION_STREAM, "action", control_hz, {
            "qpos": FieldInfo((joints,), "float64", "rad"),
            "gripper": FieldInfo((1,), "float64", ""),
        }))
        self.arm = arm
        self.task = task
        self.pacer = Pacer(control_hz, realtime)
        self.seq = 0
        self._episode: tuple[int, float] | None = None  # (start ns, duration s)
        self._lock = threading.Lock()

    def begin(self, start_ns: int, duration_s: float) -> None:
        with self._lock:
            self._episode = (start_ns, duration_s)

    def end(self) -> None:
        with self._lock:
            self._episode = None

    def _connect(self) -> None:
        self.pacer.next_ns = max(self.pacer.next_ns, time.monotonic_ns())

    def _capture(self) -> Capture | None:
        t = self.pacer.wait(self._stop)
        with self._lock:
            episode = self._episode
        phase = 0.0 if episode is None else (t - episode[0]) / 1e9 / episode[1]
        q, gripper = self.task.target(phase)
        self.arm.command(q, gripper)
        seq = np.array([self.seq])
        self.seq += 1
        return Capture(device_ns=np.array([t]), seq=seq,
                       values={"qpos": q[None], "gripper": np.array([[gripper]])})
