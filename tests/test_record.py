"""Recording the simulated station end to end, read back with plain h5py."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from collector.config import load_station
from collector.station import Station
from drivers.sim.camera import read_counter
from tests.conftest import SIM_CONFIG, record_one, run_cli, short_run

CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")


def episode_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.h5") if "rejected" not in p.parts)


def check_episode(path: Path, duration_s: float, control_hz: float = 30.0) -> None:
    with h5py.File(path, "r") as f:
        n = f["timestamps"].shape[0]
        assert abs(n - duration_s * control_hz) <= 1
        assert np.all(np.diff(f["timestamps"][:]) == round(1e9 / control_hz))
        for cam in CAMERAS:
            ds = f[f"observations/images/{cam}"]
            assert ds.shape == (n,) and ds.attrs["encoding"] == "jpeg"
            for i in (0, n // 2, n - 1):
                frame = cv2.imdecode(ds[i], cv2.IMREAD_COLOR)
                assert frame.shape == (480, 640, 3)
        assert f["observations/ft/value"].shape == (n, 6)
        assert f["observations/arm/qpos"].shape == (n, 6)
        assert f["observations/qpos"].shape == (n, 6)  # ALOHA name, same data
        assert f["action"].shape == (n, 6)
        assert f["actions/action/gripper"].shape == (n, 1)
        assert f.attrs["format"] == "collector.episode" and f.attrs["outcome"] == "success"
        assert "sim_camera" in f.attrs["rig_config"]
        assert 0 < f["efficiency"].attrs["efficiency"] <= 1
        for stream in (*CAMERAS, "ft", "arm", "action"):
            assert f[f"quality/{stream}/missing"].shape == (n,)
            assert f[f"raw/{stream}/arrival_ns"].shape[0] > 0


def test_record_three_episodes_with_the_cli(tmp_path):
    result = run_cli("record", str(SIM_CONFIG), "--episodes", "3", "--engine", "inline",
                     *short_run(tmp_path, 1.0))
    assert result.returncode == 0, result.stderr
    files = episode_files(tmp_path)
    assert len(files) == 3
    for path in files:
        check_episode(path, 1.0)
        assert str(path) in result.stdout
    assert "wrote 3 episode(s)" in result.stdout and "efficiency" in result.stdout

    shown = run_cli("inspect", str(files[0]))
    assert shown.returncode == 0, shown.stderr
    for stream in (*CAMERAS, "ft", "arm", "action"):
        assert stream in shown.stdout
    assert "30 ticks at 30 Hz" in shown.stdout and "efficiency" in shown.stdout


def test_camera_frames_follow_the_grid(tmp_path):
    """The frame stored at each tick is the one the camera captured nearest to it."""
    summary = record_one(tmp_path, 1.5)
    with h5py.File(summary.path, "r") as f:
        seq = f["raw/cam_high/seq"][:]
        capture = f["raw/cam_high/capture_ns"][:]
        chosen = f["quality/cam_high/capture_ns"][:]
        images = f["observations/images/cam_high"]
        for tick in range(0, images.shape[0], 7):
            frame = cv2.cvtColor(cv2.imdecode(images[tick], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            expected = seq[np.searchsorted(capture, chosen[tick])]
            assert read_counter(frame) == expected


def test_inspect_rejects_a_non_episode(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    result = run_cli("inspect", str(junk))
    assert result.returncode == 1
    assert "cannot open" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.ray
def test_ray_and_inline_give_the_same_layout(tmp_path, ray_session):
    shapes = {}
    for kind in ("inline", "ray"):
        out = tmp_path / kind
        config = load_station(SIM_CONFIG, [f"station.output_dir={out}", f"engine.kind={kind}",
                                           "episode.duration_s=1.0"])
        station = Station(config)
        try:
            [summary] = station.record(1)
        finally:
            station.close()
        check_episode(Path(summary.path), 1.0)
        with h5py.File(summary.path, "r") as f:
            found = {}
            f.visititems(lambda name, obj, found=found: found.__setitem__(
                name, obj.shape if isinstance(obj, h5py.Dataset) and not name.startswith("raw")
                else None))
            shapes[kind] = found
    assert shapes["inline"] == shapes["ray"]
