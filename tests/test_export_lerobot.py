"""`collector export --format lerobot`: a LeRobotDataset v3.0 folder, read back with pyarrow and
PyAV here, and with LeRobot's own `LeRobotDataset` where a LeRobot venv is given."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import av
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from collector.storage.reader import open_episode
from tests.conftest import ROOT, run_cli
from tests.export_episodes import JPEG, MARKED, SLOW, STEPPED, mixed_sources, psnr

MIN_PSNR = 35.0  # dB: a decoded frame against the episode's own, the acceptance's bar
LEROBOT_PYTHON = os.environ.get("COLLECTOR_LEROBOT_PYTHON")
LOAD_SCRIPT = ROOT / "tests" / "lerobot_load.py"


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("lerobot_sources")
    return mixed_sources(folder, 2.0)


@pytest.fixture(scope="module")
def dataset(episodes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "ds"
    result = run_cli("export", "--format", "lerobot", "--out", str(out), *map(str, episodes))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("exporting 2 of 2 episode(s)")
    assert "100%" in result.stderr
    return out


def test_layout_and_info_are_lerobot_v3(dataset, episodes):
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 30
    with open_episode(episodes[0]) as ep:
        n = len(ep)
        state_names = [*ep.channels("arm", "qpos").names, "gripper"]
        shape = ep.images(STEPPED).shape
    assert info["total_episodes"] == 2 and info["total_frames"] == 2 * n
    features = info["features"]
    assert features["observation.state"] == {"dtype": "float32", "shape": [7],
                                             "names": state_names}
    assert features["action"]["shape"] == [7]
    assert features[f"observation.images.{STEPPED}"]["dtype"] == "video"
    assert features[f"observation.images.{STEPPED}"]["shape"] == list(shape)
    for key in ("observation.ft.value", "observation.arm.qvel", "timestamp",
                f"quality.{STEPPED}.missing", "quality.ft.dt_ns", "quality.arm.capture_ns"):
        assert key in features, key
    for i in range(2):
        assert (dataset / f"data/chunk-000/file-{i:03d}.parquet").is_file()
        for cam in (STEPPED, SLOW, JPEG):
            assert (dataset / f"videos/observation.images.{cam}/chunk-000/"
                              f"file-{i:03d}.mp4").is_file()
    stats = json.loads((dataset / "meta/stats.json").read_text())
    assert np.array(stats[f"observation.images.{STEPPED}"]["mean"]).shape == (3, 1, 1)
    state = stats["observation.state"]
    assert len(state["mean"]) == 7 and state["count"] == [info["total_frames"]]
    assert set(state) >= {"min", "max", "mean", "std", "q01", "q50", "q99"}
    assert all(a <= b for a, b in zip(state["q01"], state["q99"], strict=True))
    assert not list(dataset.parent.glob(".*exporting"))


def test_rows_are_the_episode_with_every_mask(dataset, episodes):
    table = pq.read_table(dataset / "data/chunk-000/file-001.parquet").to_pydict()
    with open_episode(episodes[1]) as ep:
        n = len(ep)
        assert len(table["index"]) == n and table["index"][0] == n  # global index goes on
        assert table["episode_index"] == [1] * n and table["frame_index"] == list(range(n))
        state = np.concatenate([ep.fields("arm")["qpos"], ep.fields("arm")["gripper"]], axis=1)
        np.testing.assert_allclose(np.array(table["observation.state"]), state, rtol=1e-6)
        action = ep.fields("action")
        np.testing.assert_allclose(np.array(table["action"]),
                                   np.concatenate([action["qpos"], action["gripper"]], axis=1),
                                   rtol=1e-6)
        ts = ep.timestamps
        np.testing.assert_allclose(table["timestamp"], (ts - ts[0]) / 1e9, atol=1e-6)
        quality = ep.quality(SLOW)
        assert table[f"quality.{SLOW}.missing"] == quality["missing"].tolist()
        assert table[f"quality.{SLOW}.capture_ns"] == quality["capture_ns"].tolist()
        assert table["quality.ft.dt_ns"] == ep.quality("ft")["dt_ns"].tolist()
        for stream in ep.file["quality"]:  # every mask and score, the flags raised included
            for name, values in ep.quality(stream).items():
                np.testing.assert_array_equal(table[f"quality.{stream}.{name}"], values,
                                              err_msg=f"{stream}.{name}")
        for (camera, check), ticks in MARKED.items():
            assert np.flatnonzero(table[f"quality.{camera}.{check}"]).tolist() == ticks
    episodes_meta = pq.read_table(dataset / "meta/episodes/chunk-000/file-000.parquet")
    rows = episodes_meta.to_pylist()
    assert [r["length"] for r in rows] == [n, n]
    assert rows[1]["dataset_from_index"] == n and rows[1]["dataset_to_index"] == 2 * n
    assert rows[1][f"videos/observation.images.{SLOW}/to_timestamp"] == pytest.approx(n / 30)


def _decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * stream.time_base))
    return frames, times


@pytest.mark.parametrize("camera", [STEPPED, SLOW, JPEG])
def test_each_video_has_one_frame_per_tick_at_its_time(dataset, episodes, camera):
    frames, times = _decode(dataset / f"videos/observation.images.{camera}/chunk-000/"
                                      f"file-000.mp4")
    with open_episode(episodes[0]) as ep:
        n = len(ep)
        ts = ep.timestamps
        assert len(frames) == n
        np.testing.assert_allclose(times, (ts - ts[0]) / 1e9, atol=1e-4)  # LeRobot's tolerance
        ticks = ep.images(camera)
        for t in (0, n // 2, n - 1):
            assert psnr(frames[t], ticks[t]) > MIN_PSNR, (camera, t)
    how = json.loads((dataset / "meta/collector.json").read_text())["episodes"][0]["videos"]
    expected = {STEPPED: "remuxed", SLOW: "re-encoded", JPEG: "encoded"}[camera]
    assert how[f"observation.images.{camera}"].startswith(expected)


def test_a_remuxed_video_holds_the_stored_packets(dataset, episodes):
    path = dataset / f"videos/observation.images.{STEPPED}/chunk-000/file-000.mp4"
    with av.open(str(path)) as container:
        sizes = [p.size for p in container.demux(container.streams.video[0]) if p.size]
    with open_episode(episodes[0]) as ep:
        stored = [len(p) for p in ep.frames(STEPPED).packets()]  # type: ignore[union-attr]
    # the mp4 muxer swaps Annex-B start codes for lengths: sizes agree within a few bytes
    assert len(sizes) == len(stored)
    assert all(abs(a - b) <= 16 for a, b in zip(sizes, stored, strict=True))


@pytest.mark.skipif(not LEROBOT_PYTHON, reason="COLLECTOR_LEROBOT_PYTHON not set: .ci/run "
                    "makes a LeRobot venv and sets it; this checks LeRobotDataset loads the export")
def test_lerobot_dataset_loads_the_export(dataset, episodes, tmp_path):
    saved = tmp_path / "lerobot_frames.npz"
    result = subprocess.run([str(LEROBOT_PYTHON), str(LOAD_SCRIPT), str(dataset), str(saved)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    with open_episode(episodes[0]) as ep:
        n = len(ep)
        shape = list(ep.images(STEPPED).shape)
        own = {cam: ep.images(cam)[n // 2] for cam in (STEPPED, SLOW, JPEG)}
    assert loaded["num_frames"] == 2 * n and loaded["num_episodes"] == 2
    assert loaded["fps"] == 30 and loaded["episode_lengths"] == [n, n]
    assert {"observation.state", "action", "timestamp", f"observation.images.{STEPPED}",
            f"quality.{STEPPED}.missing"} <= set(loaded["features"])
    assert loaded["shapes"][f"observation.images.{STEPPED}"] == [shape[2], *shape[:2]]
    frames = np.load(saved)
    for cam, frame in own.items():
        assert psnr(frames[cam], frame) > MIN_PSNR, cam


def test_other_rates_or_rigs_are_refused_in_one_dataset(episodes, tmp_path):
    other = ROOT / "tests/data/format1_episode.h5"
    result = run_cli("export", "--format", "lerobot", "--out", str(tmp_path / "ds"),
                     str(episodes[0]), str(other), "--outcomes", "success,failure,truncated")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "one set of features" in result.stderr or "fps" in result.stderr
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".*"))


def test_a_format1_file_exports_to_every_format(tmp_path):
    source = ROOT / "tests/data/format1_episode.h5"
    with open_episode(source) as ep:
        n, shape = len(ep), ep.images("cam_high").shape
        middle = ep.images("cam_high")[n // 2]
    for fmt in ("lerobot", "aloha", "robomimic"):
        out = tmp_path / fmt
        result = run_cli("export", "--format", fmt, "--out", str(out), str(source))
        assert result.returncode == 0, (fmt, result.stderr)
    frames, _ = _decode(tmp_path / "lerobot/videos/observation.images.cam_high/chunk-000/"
                                   "file-000.mp4")
    assert len(frames) == n and psnr(frames[n // 2], middle[:shape[0] // 2 * 2,
                                                               :shape[1] // 2 * 2]) > MIN_PSNR
    with h5py.File(tmp_path / "aloha/episode_0.hdf5", "r") as f:
        assert f["/observations/images/cam_high"].shape == (n, *shape)
        assert f["/observations/qpos"].shape[0] == n == f["/action"].shape[0]
