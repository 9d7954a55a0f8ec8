"""`collector export --format aloha`: ACT's episode_<i>.hdf5 files, opened with plain h5py the
way ACT's `utils.py` reads them (EpisodicDataset.__getitem__, get_norm_stats)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.storage.reader import open_episode
from tests.conftest import run_cli
from tests.export_episodes import JPEG, MARKED, SLOW, STEPPED, mixed_sources

CAMERAS = [SLOW, STEPPED, JPEG]


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("aloha_sources")
    return mixed_sources(folder, 1.5)


@pytest.fixture(scope="module")
def exported(episodes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aloha") / "act"
    result = run_cli("export", "--format", "aloha", "--out", str(out), *map(str, episodes))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "2 episode(s)" in result.stdout
    return out


def test_act_reads_each_episode_as_it_reads_aloha_files(exported, episodes):
    assert sorted(p.name for p in exported.iterdir()) == ["episode_0.hdf5", "episode_1.hdf5"]
    for i, source in enumerate(episodes):
        with h5py.File(exported / f"episode_{i}.hdf5", "r") as root, \
                open_episode(source) as ep:
            n = len(ep)
            # what EpisodicDataset.__getitem__ reads
            assert root.attrs["sim"] == np.True_  # every device of the sim station is simulated
            episode_len = root["/action"].shape[0]
            assert episode_len == n
            start_ts = n // 2
            qpos = root["/observations/qpos"][start_ts]
            qvel = root["/observations/qvel"][start_ts]
            images = {cam: root[f"/observations/images/{cam}"][start_ts] for cam in CAMERAS}
            action = root["/action"][start_ts:]
            assert qpos.shape == (7,) and qvel.shape == (7,) and action.shape == (n - start_ts, 7)
            assert root["/observations/qpos"].dtype == np.float64
            assert root["/action"].dtype == np.float64
            for cam, image in images.items():
                assert image.dtype == np.uint8 and image.shape == ep.images(cam).shape
                np.testing.assert_array_equal(image, ep.images(cam)[start_ts])
            # the values: the arm's joints and gripper, its velocity, the command
            arm = ep.fields("arm")
            np.testing.assert_array_equal(root["/observations/qpos"][:],
                                          np.concatenate([arm["qpos"], arm["gripper"]], axis=1))
            np.testing.assert_array_equal(root["/observations/qvel"][:, :6], arm["qvel"])
            command = ep.fields("action")
            np.testing.assert_array_equal(root["/action"][:], np.concatenate(
                [command["qpos"], command["gripper"]], axis=1))
            sources = list(root.attrs["qvel_source"])
            assert sources[0] == "arm.qvel (rig, full rate)"
            assert sources[6] == "difference of arm.gripper over grid ticks"
            grip = arm["gripper"][:, 0]
            dt = np.diff(ep.timestamps) / 1e9
            np.testing.assert_allclose(root["/observations/qvel"][1:, 6], np.diff(grip) / dt)
            # every mask and score travels along, the flags raised included
            for stream in ep.file["quality"]:
                for name, values in ep.quality(stream).items():
                    np.testing.assert_array_equal(root[f"/quality/{stream}/{name}"][:], values,
                                                  err_msg=f"{stream}/{name}")
            for (camera, check), ticks in MARKED.items():
                assert np.flatnonzero(root[f"/quality/{camera}/{check}"][:]).tolist() == ticks
            assert "missing" in root.attrs["missing_fill"]


def test_norm_stats_stack_over_episodes_as_act_does(exported):
    qpos, action = [], []
    for i in range(2):
        with h5py.File(exported / f"episode_{i}.hdf5", "r") as root:
            qpos.append(root["/observations/qpos"][()])
            action.append(root["/action"][()])
    stacked = np.stack(qpos)  # ACT's get_norm_stats: one length for every episode
    assert stacked.shape[0] == 2 and np.isfinite(stacked).all()
    assert np.stack(action).std(axis=(0, 1)).max() > 0


@pytest.mark.slow
def test_a_stream_shorter_than_the_grid_is_an_error_not_garbage(episodes, tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(episodes[0].read_bytes())
    with h5py.File(broken, "r+") as f:
        values = f["observations/ft/value"][:]
        del f["observations/ft/value"]
        f["observations/ft/value"] = values[:-10]  # what a cut-short stream leaves
    for fmt in ("aloha", "lerobot", "robomimic"):
        out = tmp_path / f"out-{fmt}"
        result = run_cli("export", "--format", fmt, "--out", str(out), str(broken))
        assert result.returncode == 1, (fmt, result.stdout)
        assert "Traceback" not in result.stderr
        assert "observations/ft/value" in result.stderr, result.stderr
        errors = [x for x in result.stderr.splitlines() if x.startswith("collector: error:")]
        assert len(errors) == 1, result.stderr
        assert not out.exists() and not list(tmp_path.glob(".*exporting"))
