"""Tasks command the arm during an episode; the commands are recorded as the `action` stream.

A task is a small class with `target(elapsed_s, episode_s) -> (joints, gripper)`, `duration_s`
(None: it runs as long as the episode) and `succeeded()`. Built-in: `pick_place`; a YAML
waypoint sequence becomes a `WaypointTask`; `package.module:Class` names a class of your own.
"""

from __future__ import annotations

import importlib
import threading
import time

import numpy as np

from collector.errors import ConfigError
from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from drivers.sim.world import HOME, Pacer
from schemas.station import EpisodeConfig, TaskSequence

ACTION_STREAM = "action"


class SuccessDraw:
    """Simulated success at `rate`, spread evenly: over any run of episodes the share of
    successes stays within one episode of `rate` (error diffusion), so a configured rate is
    what a session shows, not a coin-flip away from it."""

    def __init__(self, rate: float):
        self.rate = rate
        self.credit = 0.5

    def __call__(self) -> bool:
        self.credit += self.rate
        if self.credit >= 1.0:
            self.credit -= 1.0
            return True
        return False


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

    name = "pick_place"
    duration_s: float | None = None  # spans whatever the episode lasts

    def __init__(self, joints: int, success_rate: float = 1.0):
        self.joints = joints
        self.success_rate = success_rate
        self._draw = SuccessDraw(success_rate)

    def target(self, elapsed_s: float, episode_s: float) -> tuple[np.ndarray, float]:
        """Joint target and gripper closure `elapsed_s` into an episode of `episode_s`."""
        w = self.WAYPOINTS
        phase = min(max(elapsed_s / episode_s, 0.0), 1.0) if episode_s > 0 else 0.0
        first3 = [np.interp(phase, w[:, 0], w[:, 1 + j]) for j in range(3)]
        q = np.resize(HOME, self.joints).astype(np.float64)
        q[: min(3, self.joints)] = first3[: self.joints]
        gripper = float(np.interp(phase, w[:, 0], w[:, 4]))
        return q, gripper

    def succeeded(self) -> bool:
        return self._draw()


class WaypointTask:
    """A YAML task: move through the waypoints in order (linear in joint space), holding each
    for its `hold_s`. Joints the waypoints do not name hold their home pose."""

    def __init__(self, sequence: TaskSequence, joints: int, success_rate: float = 1.0):
        for i, w in enumerate(sequence.waypoints):
            if len(w.joints) > joints:
                raise ConfigError(f"episode.task.waypoints[{i}].joints has {len(w.joints)} "
                                  f"values but the arm has {joints} joints")
        self.name = sequence.name
        self.joints = joints
        self.duration_s = sequence.duration_s
        home = np.resize(HOME, joints).astype(np.float64)
        poses = [home.copy()]
        times, grips = [0.0], [0.0]
        for w in sequence.waypoints:
            q = home.copy()
            q[: len(w.joints)] = w.joints
            for dt in (w.duration_s, w.hold_s):
                if dt > 0:
                    times.append(times[-1] + dt)
                    poses.append(q)
                    grips.append(w.gripper)
        self._times = np.array(times)
        self._poses = np.stack(poses)
        self._grips = np.array(grips)
        self._draw = SuccessDraw(success_rate)

    def target(self, elapsed_s: float, episode_s: float) -> tuple[np.ndarray, float]:
        t = min(max(elapsed_s, 0.0), self.duration_s)
        q = np.array([np.interp(t, self._times, self._poses[:, j]) for j in range(self.joints)])
        return q, float(np.interp(t, self._times, self._grips))

    def succeeded(self) -> bool:
        return self._draw()


BUILT_IN = {"pick_place": PickPlaceTask}


def make_task(episode: EpisodeConfig, joints: int):
    """The task an episode config names: built-in, `package.module:Class`, or a sequence."""
    spec = episode.task
    if isinstance(spec, TaskSequence):
        return WaypointTask(spec, joints, episode.task_success_rate)
    if spec in BUILT_IN:
        return BUILT_IN[spec](joints, episode.task_success_rate)
    module, sep, name = spec.partition(":")
    if not sep:
        raise ConfigError(f"episode.task {spec!r}: not a built-in task ({', '.join(BUILT_IN)}); "
                          f"name a class as package.module:Class or give waypoints")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"episode.task {spec!r}: cannot import it ({exc})") from None
    try:
        return cls(joints, episode.task_success_rate)
    except Exception as exc:  # the user's class: whatever it raises, it is not a task we can run
        raise ConfigError(f"episode.task {spec!r}: {name}(joints={joints}, success_rate="
                          f"{episode.task_success_rate}) failed ({type(exc).__name__}: {exc}); a "
                          "task class takes those two arguments (see PickPlaceTask in "
                          "collector/task.py)") from None


def task_name(episode: EpisodeConfig) -> str:
    """What episode metadata calls the task."""
    return episode.task.name if isinstance(episode.task, TaskSequence) else episode.task


def task_seconds(episode: EpisodeConfig) -> float | None:
    """How long the task takes to finish; None when it spans whatever the episode lasts."""
    return episode.task.duration_s if isinstance(episode.task, TaskSequence) else None


def episode_seconds(episode: EpisodeConfig, limit_s: float | None = None) -> float:
    """How long the next episode records: the duration limit, or less when the task (a
    sequence) finishes sooner, or the operator's own limit."""
    seconds = episode.duration_s if limit_s is None else min(limit_s, episode.duration_s)
    if isinstance(episode.task, TaskSequence):
        seconds = min(seconds, episode.task.duration_s)
    return seconds


class TaskRunner(ThreadedDevice):
    """Runs the task at the control rate while an episode records; between episodes, holds home.

    It is a device like any other so that the commands reach the episode through the same
    path, timestamps and grid alignment as every observation.
    """

    def __init__(self, arm, task, control_hz: float, realtime: bool = True):
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

    def _capture(self) -> CapturedSamples | None:
        t = self.pacer.wait(self._stop)
        with self._lock:
            episode = self._episode
        elapsed, length = (0.0, 1.0) if episode is None else ((t - episode[0]) / 1e9, episode[1])
        q, gripper = self.task.target(elapsed, length)
        self.arm.command(q, gripper)
        seq = np.array([self.seq])
        self.seq += 1
        return CapturedSamples(device_ns=np.array([t]), seq=seq,
                       values={"qpos": q[None], "gripper": np.array([[gripper]])})
