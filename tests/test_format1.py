"""A format-1 episode, recorded by main before format 2 (commit 9ebefca), still works everywhere.

The file is a real recording by that code (three 96x72 JPEG cameras, cam_high at 15 fps under
the 30 Hz grid, ft at 200 Hz, 1.5 s, gzip), kept in tests/data so no later change to the
writer can regenerate it: it is what users' disks hold.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.storage.reader import open_episode
from tests.conftest import run_cli

FORMAT1 = Path(__file__).parent / "data" / "format1_episode.h5"


@pytest.fixture
def episode(tmp_path) -> Path:
    copy = tmp_path / FORMAT1.name  # commands must never need to write the user's file
    shutil.copy(FORMAT1, copy)
    return copy


def test_the_fixture_is_format_1():
    with h5py.File(FORMAT1, "r") as f:
        assert f.attrs["format_version"] == 1
        assert "videos" not in f
        assert f["observations/images/cam_high"].dtype.kind == "O"  # JPEG bytes per tick


def test_it_opens_and_its_frames_decode(episode):
    with open_episode(episode) as ep:
        assert ep.format_version == 1
        assert len(ep) == 45 and set(ep.cameras) == {"cam_high", "cam_left_wrist",
                                                     "cam_right_wrist"}
        frames = ep.images("cam_high")
        assert len(frames) == 45 and frames.shape == (72, 96, 3)  # shape: one frame's
        first, last = frames[0], frames[44]
        assert first.dtype == np.uint8 and first.shape == (72, 96, 3)
        assert np.abs(first.astype(int) - last.astype(int)).mean() > 1  # the arm moved


def test_it_validates_and_inspects(episode):
    result = run_cli("validate", str(episode))
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_cli("inspect", str(episode))
    assert result.returncode == 0, result.stderr
    assert "cam_high" in result.stdout and "jpeg" in result.stdout and "45 ticks" in result.stdout


def test_it_replays_to_video_and_exports(episode, tmp_path):
    sheet = tmp_path / "sheet.png"
    result = run_cli("replay", str(episode), "--to", "video", str(sheet), "--frames", "4")
    assert result.returncode == 0, result.stderr
    assert sheet.stat().st_size > 0
    out = tmp_path / "demos.hdf5"
    result = run_cli("export", str(out), str(episode))
    assert result.returncode == 0, result.stderr
    with h5py.File(out, "r") as f, open_episode(episode) as ep:
        images = f["data/demo_0/obs/cam_high_image"]
        assert images.shape == (45, 72, 96, 3)
        assert np.array_equal(images[10], ep.images("cam_high")[10])


def test_it_replays_through_the_pipeline(episode, tmp_path):
    result = run_cli("replay", str(episode), "--to", "pipeline", "--engine", "inline",
                     "--set", f"station.output_dir={tmp_path / 'replays'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [replayed] = list((tmp_path / "replays").rglob("*.h5"))
    with open_episode(replayed) as ep:
        assert len(ep) == 45
