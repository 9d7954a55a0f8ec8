"""`collector config check` states the disk a station fills; a recording bears it out."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import pytest

from collector.storage.videos import video_length
from schemas.layout import VIDEOS, video_path
from tests.conftest import SIM_CONFIG, record_one, run_cli

RAW_SMALL = ["pipeline.images.encoding=raw", "devices.cam_high.fps=15",
             "devices.cam_high.width=400", "devices.cam_high.height=300"]


def _stated(*overrides: str) -> tuple[float, str]:
    sets = [arg for item in overrides for arg in ("--set", item)]
    result = run_cli("config", "check", str(SIM_CONFIG), *sets)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    match = re.match(r"estimated write rate: ([\d.]+) MB/s, ([\d.]+) GB per hour of recording, "
                     r"(\d+) MB per ([\d.]+) s episode", line)
    assert match, line
    mb_s, gb_h = float(match.group(1)), float(match.group(2))
    assert gb_h / 3.6 == pytest.approx(mb_s, abs=0.07)  # both rounded to 0.1
    return mb_s, line


def _recorded_mb_s(out: Path, seconds: float, *overrides: str) -> float:
    summary = record_one(out, seconds, *overrides)
    return Path(summary.path).stat().st_size / 1e6 / seconds


def test_the_shipped_station_write_rate_is_stated_and_holds(tmp_path):
    mb_s, line = _stated()
    assert "3 camera(s) h264 crf 20 gop 15" in line and "an estimate" in line
    # encoded size depends on the scene: the estimate is honest within a fifth on the simulator's
    # (4 s: a video's first keyframes and the file's fixed overhead weigh less than in 2 s)
    seconds = 4.0
    summary = record_one(tmp_path, seconds)
    path = Path(summary.path)
    # a video stores the frames the cameras delivered: on a loaded host they deliver fewer (CI
    # once stored 64% of them), so the size is read per delivered frame, at the nominal rate
    with h5py.File(path, "r") as f:
        stored = sum(video_length(f[video_path(c)]) for c in f[VIDEOS])
    nominal = 3 * 30 * seconds
    assert stored > 0.3 * nominal
    per_nominal_rate = path.stat().st_size / 1e6 / seconds * nominal / stored
    assert per_nominal_rate == pytest.approx(mb_s, rel=0.2)


@pytest.mark.slow
def test_jpeg_is_stated_as_jpeg_and_holds(tmp_path):
    mb_s, line = _stated("pipeline.images.encoding=jpeg")
    assert "3 camera(s) jpeg q90" in line and "an estimate" in line
    assert _recorded_mb_s(tmp_path, 2.0, "pipeline.images.encoding=jpeg") == pytest.approx(
        mb_s, rel=0.2)


def test_raw_frames_are_estimated_to_the_byte_count(tmp_path):
    mb_s, line = _stated(*RAW_SMALL)
    assert "an estimate" not in line  # raw frames: no guess about the scene
    # one stored frame per grid tick, whatever the camera's own rate
    assert _recorded_mb_s(tmp_path, 2.0, *RAW_SMALL) == pytest.approx(mb_s, rel=0.05)


def test_the_rate_follows_encoding_and_size():
    jpeg, _ = _stated()
    raw, _ = _stated("pipeline.images.encoding=raw")
    half, _ = _stated("pipeline.images.encoding=raw", "pipeline.images.resize=[320, 240]")
    assert raw > 5 * jpeg
    assert half == pytest.approx(raw / 4, rel=0.02)
