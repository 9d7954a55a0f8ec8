"""Recording the simulated station end to end, read back with plain h5py and the reader."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.config import load_station
from collector.station import Station
from collector.storage.reader import open_episode
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
        for cam in CAMERAS:  # the shipped encoding: a video per camera, a frame index per tick
            ds = f[f"observations/images/{cam}"]
            assert ds.shape == (n,) and ds.attrs["encoding"] == "h264"
            assert f[f"videos/{cam}/packets"].shape[0] > 0
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
    with open_episode(path) as ep:
        for cam in CAMERAS:
            for i in (0, n // 2, n - 1):
                assert ep.images(cam)[i].shape == (480, 640, 3)
        for stream in (*CAMERAS, "ft", "arm", "action"):
            assert ep.raw(stream)["arrival_ns"].shape[0] > 0


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
    with open_episode(summary.path) as ep:  # the shipped encoding: through the video's frames
        raw = ep.raw("cam_high")
        seq, capture = raw["seq"], raw["capture_ns"]
        chosen = ep.quality("cam_high")["capture_ns"]
        images = ep.images("cam_high")
        for tick in range(0, len(images), 7):
            expected = seq[np.searchsorted(capture, chosen[tick])]
            assert read_counter(images[tick]) == expected


def test_inspect_rejects_a_non_episode(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    result = run_cli("inspect", str(junk))
    assert result.returncode == 1
    assert "cannot open" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.ray
@pytest.mark.slow
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
            # /raw and /videos hold each stream's own samples: their lengths vary run to run
            f.visititems(lambda name, obj, found=found: found.__setitem__(
                name, obj.shape if isinstance(obj, h5py.Dataset)
                and not name.startswith(("raw", "videos")) else None))
            shapes[kind] = found
    assert shapes["inline"] == shapes["ray"]
