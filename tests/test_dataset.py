"""`collector.dataset.EpisodeDataset`: samples, windows with edge padding, lazy frames, filters,
and worker processes (fork and spawn) that open their own files."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.dataset import EpisodeDataset
from collector.errors import CollectorError
from collector.storage.reader import open_episode
from tests.export_episodes import JPEG, SLOW, STEPPED, mixed_episode
from tests.video_episodes import record_format1

ACTION_OFFSETS = range(0, 10)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    source = record_format1(root / "format1", 1.5)
    episodes = root / "episodes"
    for i in range(2):
        mixed_episode(episodes, f"mixed{i}.h5", source=source)
    shutil.rmtree(root / "format1")
    shutil.copyfile(episodes / "mixed0.h5", episodes / "failed.h5")
    with h5py.File(episodes / "failed.h5", "r+") as f:
        f.attrs["outcome"] = "failure"
    with h5py.File(episodes / "mixed1.h5", "r+") as f:
        f[f"quality/{SLOW}/blurred"][3] = True
    return episodes


def dataset(folder: Path, **kw) -> EpisodeDataset:
    return EpisodeDataset(folder, observation_offsets=[-1, 0], action_offsets=ACTION_OFFSETS,
                          **kw)


def test_samples_run_over_every_tick_of_the_episodes_taken(folder):
    data = dataset(folder)
    assert [p.name for p in data.episodes] == ["mixed0.h5", "mixed1.h5"]  # failure left out
    assert any("outcome failure" in s for s in data.skipped)
    with open_episode(folder / "mixed1.h5") as ep:
        n = len(ep)
        arm, command = ep.fields("arm"), ep.fields("action")
        state = np.concatenate([arm["qpos"], arm["gripper"]], axis=1).astype(np.float32)
        action = np.concatenate([command["qpos"], command["gripper"]], axis=1)
        t = n // 2
        sample = data[n + t]  # episode 1, tick t
        assert sample["episode_index"] == 1 and sample["frame_index"] == t
        np.testing.assert_array_equal(sample["observation.state"], state[[t - 1, t]])
        np.testing.assert_array_equal(sample["action"], action[t:t + 10].astype(np.float32))
        assert not sample["action_is_pad"].any() and not sample["observation.state_is_pad"].any()
        for cam in (SLOW, STEPPED, JPEG):
            frames = sample[f"observation.images.{cam}"]
            assert frames.shape == (2, *ep.images(cam).shape) and frames.dtype == np.uint8
            np.testing.assert_array_equal(frames[1], ep.images(cam)[t])
            np.testing.assert_array_equal(frames[0], ep.images(cam)[t - 1])
            np.testing.assert_array_equal(sample[f"observation.images.{cam}_missing"],
                                          ep.quality(cam)["missing"][[t - 1, t]])
    assert len(data) == 2 * n
    assert data.state_names[-1] == "gripper" and len(data.action_names) == 7


def test_windows_pad_at_episode_edges(folder):
    data = dataset(folder)
    n = len(data) // 2
    first = data[0]
    assert first["observation.state_is_pad"].tolist() == [True, False]
    np.testing.assert_array_equal(first["observation.state"][0], first["observation.state"][1])
    last = data[n - 1]  # the last tick of episode 0: only offset 0 of the actions is real
    assert last["action_is_pad"].tolist() == [False] + [True] * 9
    assert (last["action"] == last["action"][0]).all()
    assert data[n]["episode_index"] == 1 and data[n]["observation.state_is_pad"][0]
    with pytest.raises(IndexError):
        data[len(data)]


def test_filters_by_outcome_and_masks(folder):
    assert len(dataset(folder, outcomes=["success", "failure"]).episodes) == 3
    clean = dataset(folder, require_clean=["blurred"])
    assert [p.name for p in clean.episodes] == ["mixed0.h5"]
    assert any("blurred" in s for s in clean.skipped)
    with pytest.raises(CollectorError, match=r"no episode is outcome recovered"):
        dataset(folder, outcomes=["recovered"])


def _take(args):
    data, indices = args
    return [{k: v for k, v in data[i].items() if k.startswith("observation.images")}
            for i in indices]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes_read_their_own_files(folder, method):
    data = dataset(folder, image_offsets=[0])
    indices = [int(i) for i in np.random.default_rng(0).permutation(len(data))[:12]]
    here = _take((data, indices))  # the parent opened its files before the workers start
    assert data._open  # so a forked worker inherits a handle it must not use
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        there = pool.map(_take, [(data, indices[:6]), (data, indices[6:])])
    for mine, theirs in zip(here, there[0] + there[1], strict=True):
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])
    assert not pickle.loads(pickle.dumps(data))._open  # no handle travels in a pickle
