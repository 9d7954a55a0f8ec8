"""The reader API and `collector export` to the robomimic layout, on recorded episodes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import collector
from collector.config import load_station
from collector.station import Station
from drivers.sim.camera import read_counter
from schemas.episode import EpisodeMetadata
from tests.conftest import SIM_CONFIG, run_cli
from tests.video_episodes import record_format1


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("episodes")
    config = load_station(SIM_CONFIG, [f"station.output_dir={out}", "engine.kind=inline",
                                       "episode.duration_s=1.0", "episode.reset_s=0.1"])
    station = Station(config)
    try:
        summaries = station.record(2)
    finally:
        station.close()
    return [Path(s.path) for s in summaries]


def test_open_episode_gives_typed_lazy_views(episodes):
    with collector.open_episode(episodes[0]) as ep:
        assert isinstance(ep.info, EpisodeMetadata) and ep.info.outcome == "success"
        layout = ep.layout
        assert ep.streams() == {"cam_high": "camera", "cam_left_wrist": "camera",
                                "cam_right_wrist": "camera", "ft": "sensor", "arm": "arm",
                                "action": "action"}
        assert layout.streams[3].fields["value"].shape == (6,)
        n = len(ep)
        assert ep.timestamps.dtype == np.int64 and ep.timestamps.shape == (n,)
        frames = ep.images("cam_high")
        assert len(frames) == n and frames[n - 1].shape == (480, 640, 3)
        assert ep.fields("ft")["value"].shape == (n, 6)
        assert ep.sync("ft").missing.shape == (n,)
        assert set(ep.quality("cam_high")) >= {"capture_ns", "dt_ns", "missing"}


def test_export_many_episodes_into_one_robomimic_file(episodes, tmp_path):
    out = tmp_path / "demos.hdf5"
    result = run_cli("export", str(out), *map(str, episodes))
    assert result.returncode == 0, result.stderr
    assert "2 demo(s)" in result.stdout
    with h5py.File(out, "r") as f:
        data = f["data"]
        assert sorted(data) == ["demo_0", "demo_1"]
        env = json.loads(data.attrs["env_args"])
        assert env["env_name"] == "sim-01/pick_place" and "env_kwargs" in env
        total = 0
        for i, path in enumerate(episodes):
            demo = data[f"demo_{i}"]
            with collector.open_episode(path) as ep:
                n = len(ep)
                assert demo.attrs["num_samples"] == n
                assert demo.attrs["episode_id"] == ep.info.episode_id
                image = demo["obs/cam_high_image"]
                assert image.shape == (n, 480, 640, 3) and image.dtype == np.uint8
                # the exported frame is the recorded frame, decoded (same counter stamp)
                assert read_counter(image[n // 2]) == read_counter(ep.images("cam_high")[n // 2])
                np.testing.assert_array_equal(demo["obs/ft_value"][:],
                                              ep.fields("ft")["value"].astype(np.float32))
                action = ep.fields("action")
                np.testing.assert_allclose(
                    demo["actions"][:],
                    np.concatenate([action["qpos"], action["gripper"]], axis=1), rtol=1e-6)
                assert demo["dones"][-1] == 1 and demo["dones"][:-1].sum() == 0
                assert demo["rewards"][-1] == 1.0
            total += n
        assert data.attrs["total"] == total


def test_export_skips_other_outcomes_and_says_so(episodes, tmp_path):
    result = run_cli("export", str(tmp_path / "none.hdf5"), str(episodes[0]),
                     "--outcomes", "recovered")
    assert result.returncode == 1
    assert "nothing exported" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "none.hdf5").exists()


@pytest.fixture(scope="module")
def marked(tmp_path_factory) -> list[Path]:
    """Three JPEG episodes: clean, one with a blurred tick, one missing a quarter of cam_high."""
    folder = tmp_path_factory.mktemp("marked")
    source = Path(record_format1(folder / "rec", 1.0))
    out = []
    for name in ("clean", "blurred", "gappy"):
        path = folder / "episodes" / f"{name}.h5"
        path.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, path)
        with h5py.File(path, "r+") as f:  # clean, whatever the machine's load made of it
            for marks in f["quality"].values():
                for flag in marks.values():
                    if flag.dtype == np.bool_:
                        flag[:] = False
        out.append(path)
    with h5py.File(out[1], "r+") as f:
        f["quality/cam_high/blurred"][2] = True
    with h5py.File(out[2], "r+") as f:
        missing = f["quality/cam_high/missing"]
        missing[: len(missing) // 4 + 1] = True
    return out


def _demo_sources(out: Path) -> list[str]:
    with h5py.File(out, "r") as f:
        return [Path(f[f"data/{d}"].attrs["source"]).name for d in sorted(f["data"])]


@pytest.mark.slow
def test_export_selects_by_quality_masks(marked, tmp_path):
    folder = str(marked[0].parent)
    out = tmp_path / "demos.hdf5"
    done = run_cli("export", "--out", str(out), folder, "--no-images", "--max-missing", "0.2")
    assert done.returncode == 0, done.stderr
    assert _demo_sources(out) == ["blurred.h5", "clean.h5"]
    assert "gappy.h5 (cam_high misses" in done.stdout
    done = run_cli("export", "--out", str(out), folder, "--no-images",
                   "--require-clean", "blurred")
    assert done.returncode == 0, done.stderr
    assert _demo_sources(out) == ["clean.h5", "gappy.h5"]
    assert "blurred.h5 (cam_high has 1 blurred tick(s)" in done.stdout


@pytest.mark.slow
def test_export_refuses_what_selects_nothing_in_one_line(marked, tmp_path):
    folder = str(marked[0].parent)
    out = tmp_path / "demos.hdf5"
    typo = run_cli("export", "--out", str(out), folder, "--require-clean", "blured")
    assert typo.returncode == 1 and "--require-clean blured: no such flag" in typo.stderr
    none = run_cli("export", "--out", str(out), folder, "--outcomes", "recovered")
    errors = [x for x in none.stderr.splitlines() if x.startswith("collector: error:")]
    assert none.returncode == 1 and len(errors) == 1 and "nothing exported" in errors[0]
    bad = run_cli("export", "--out", str(out), folder, "--max-missing", "2")
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
    for fmt in ("lerobot", "aloha"):
        alone = run_cli("export", "--format", fmt, folder)
        assert alone.returncode == 2 and "--out" in alone.stderr


@pytest.mark.slow
def test_a_failed_export_leaves_nothing_recover_would_take(marked, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    taken = run_cli("export", "--format", "lerobot", "--out", str(out), str(marked[0]))
    assert taken.returncode == 1 and "already exists" in taken.stderr
    broken = tmp_path / "broken.h5"
    shutil.copyfile(marked[0], broken)
    with h5py.File(broken, "r+") as f:
        del f["observations/images/cam_high"]  # what validate reports
    for fmt in ("robomimic", "aloha", "lerobot"):
        result = run_cli("export", "--format", fmt, "--out", str(tmp_path / f"x-{fmt}"),
                         str(broken), str(marked[0]))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(broken) in result.stderr
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["broken.h5", "ds"]  # no .partial, no .exporting
