"""Tasks the daemon runs: a YAML waypoint sequence, a Python class, the simulated success rate."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from collector.config import load_station
from collector.errors import ConfigError
from collector.task import PickPlaceTask, SuccessDraw, make_task
from drivers.sim.world import HOME
from tests.conftest import SIM_CONFIG, WAVE, record_one, run_cli
from tests.daemon_helpers import small_cameras


class HoldPose:
    """A task written as a class: hold one pose, succeed every other episode."""

    name = "hold_pose"
    duration_s = None

    def __init__(self, joints: int, success_rate: float = 1.0):
        self.joints = joints
        self.count = 0

    def target(self, elapsed_s: float, episode_s: float):
        q = np.full(self.joints, 0.25)
        return q, 0.5

    def succeeded(self) -> bool:
        self.count += 1
        return self.count % 2 == 1


def record_small(tmp_path, *overrides: str) -> str:
    return record_one(tmp_path, 10, *small_cameras(), *overrides).path


def test_a_yaml_waypoint_task_commands_the_arm_and_ends_the_episode(tmp_path):
    path = record_small(tmp_path, f"episode.task={WAVE}")
    with h5py.File(path) as f:
        ticks = f["timestamps"].shape[0]
        assert ticks == 36  # the sequence lasts 1.2 s, well inside the 10 s limit
        assert f.attrs["task"] == "wave"
        start = f["timestamps"][0]
        chosen = f["quality/action/capture_ns"][:]  # the action sample used at each tick
        raw_capture, raw_device = f["raw/action/capture_ns"][:], f["raw/action/device_ns"][:]
        commanded_at = raw_device[np.searchsorted(raw_capture, chosen)]  # the task's own time
        action = f["actions/action/qpos"][:]
        gripper = f["actions/action/gripper"][:, 0]
        arm = f["observations/arm/qpos"][:]
        config = load_station(SIM_CONFIG, [f"episode.task={WAVE}"])
    # the recorded actions are the waypoint path at the instant each was commanded
    task = make_task(config.episode, 6)
    expected = [task.target((t - start) / 1e9, 1.2) for t in commanded_at]
    np.testing.assert_allclose(action, [q for q, _ in expected], atol=1e-9)
    np.testing.assert_allclose(gripper, [g for _, g in expected], atol=1e-9)
    np.testing.assert_allclose(action[20, :3], [0.5, -0.2, 0.9], atol=1e-6)  # holding, 0.67 s
    assert gripper[20] == pytest.approx(1.0) and gripper[3] < 0.5
    np.testing.assert_allclose(action[:, 3:], np.broadcast_to(HOME[3:], (ticks, 3)))
    # and the simulated arm followed them (first-order lag)
    assert np.abs(arm[23, :3] - [0.5, -0.2, 0.9]).max() < 0.1


def test_a_python_class_task_is_imported_by_name(tmp_path):
    path = record_small(tmp_path, "episode.task=tests.test_daemon_tasks:HoldPose",
                      "episode.duration_s=1")
    with h5py.File(path) as f:
        assert f.attrs["task"] == "tests.test_daemon_tasks:HoldPose"
        assert f.attrs["outcome"] == "success"
        np.testing.assert_allclose(f["actions/action/qpos"][:], 0.25)
        np.testing.assert_allclose(f["actions/action/gripper"][:], 0.5)


def test_bad_tasks_are_config_errors(tmp_path):
    result = run_cli("config", "check", str(SIM_CONFIG), "--set", "episode.task=pick_plaec")
    assert result.returncode == 2 and "unknown task 'pick_plaec'" in result.stderr
    result = run_cli("record", str(SIM_CONFIG), "--engine", "inline", "--set",
                     f"station.output_dir={tmp_path}", "--set", "episode.task=nowhere:Task")
    assert result.returncode == 2 and "cannot import" in result.stderr
    assert "Traceback" not in result.stderr
    too_many = "{waypoints: [{joints: [0, 0, 0, 0, 0, 0, 0], duration_s: 1}]}"
    with pytest.raises(ConfigError, match="7 values but the arm has 6 joints"):
        record_small(tmp_path, f"episode.task={too_many}")


def test_simulated_success_follows_the_configured_rate():
    for rate in (0.0, 0.35, 0.8, 1.0):
        draw = SuccessDraw(rate)
        outcomes = [draw() for _ in range(200)]
        for window in (20, 200):
            assert abs(sum(outcomes[:window]) - rate * window) <= 1
    task = PickPlaceTask(6, success_rate=0.8)
    assert [task.succeeded() for _ in range(5)].count(False) == 1
