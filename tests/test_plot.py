"""`collector plot`: a PNG of an episode's streams, with quality flags shaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from tests.conftest import record_one, run_cli


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plot")
    summary = record_one(out, 1.0)
    return Path(summary.path)


def red_pixels(path: Path) -> int:
    image = cv2.imread(str(path)).astype(np.int16)  # BGR
    b, g, r = image[..., 0], image[..., 1], image[..., 2]
    return int(((r > 180) & (g < 80) & (b < 80)).sum())


def test_plot_draws_every_stream_and_shades_flagged_ticks(recorded, tmp_path):
    clean = tmp_path / "clean.png"
    result = run_cli("plot", str(recorded), "--out", str(clean))
    assert result.returncode == 0, result.stderr
    # arm qpos+gripper+qvel, ft value+value_lowpass (each: forces N, torques N*m), action
    # qpos+gripper
    assert "9 panels" in result.stdout
    image = cv2.imread(str(clean))
    assert image is not None and image.shape[0] > 600 and image.shape[1] > 600

    flagged = tmp_path / "flagged.h5"
    shutil.copy(recorded, flagged)
    with h5py.File(flagged, "r+") as f:
        missing = f["quality/cam_high/missing"]
        values = missing[:]
        values[5:15] = True
        missing[...] = values
        extra = np.zeros(values.shape, bool)
        extra[20:25] = True
        f["quality/ft/out_of_range"][...] = extra  # the check exists: raise its flag
    shaded = tmp_path / "flagged.png"
    result = run_cli("plot", str(flagged), "--out", str(shaded))
    assert result.returncode == 0, result.stderr
    assert red_pixels(shaded) > red_pixels(clean) + 500


def test_plot_of_a_range(recorded, tmp_path):
    out = tmp_path / "range.png"
    result = run_cli("plot", str(recorded), "--out", str(out), "--start", "0.2", "--end", "0.6")
    assert result.returncode == 0, result.stderr
    assert "12 ticks" in result.stdout and out.is_file()


def test_plot_bad_range_and_folder(recorded, tmp_path):
    for args, problem in ((["--start", "0.8", "--end", "0.2"], "must be after"),
                          (["--start", "5"], "only 1.00 s long")):
        result = run_cli("plot", str(recorded), "--out", str(tmp_path / "x.png"), *args)
        assert result.returncode == 1 and problem in result.stderr
        assert "Traceback" not in result.stderr
    result = run_cli("plot", str(recorded), "--out", str(tmp_path / "no" / "x.png"))
    assert result.returncode == 1 and "does not exist" in result.stderr
