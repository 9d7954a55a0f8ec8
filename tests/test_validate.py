"""`collector validate` passes a recorded episode and names the path of every damage done to it."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from core.codec import decode_frame
from tests.conftest import record_one, run_cli


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("episodes")
    # JPEG per tick: the damage tests write into its image bytes (video damage:
    # tests/test_video_read.py)
    summary = record_one(out, 1.0, "pipeline.images.encoding=jpeg")
    return Path(summary.path)


@pytest.fixture
def damaged(recorded, tmp_path):
    """A copy of the recorded episode, open for damage; closed before validate runs."""
    path = tmp_path / "damaged.h5"
    shutil.copy(recorded, path)
    return path


def validate(path: Path) -> tuple[int, list[str]]:
    result = run_cli("validate", str(path))
    assert "Traceback" not in result.stderr, result.stderr
    problems = [line.split(": ", 1)[1] for line in result.stdout.splitlines()
                if line.startswith(str(path))]
    return result.returncode, problems


def test_a_recorded_episode_is_valid(recorded):
    result = run_cli("validate", str(recorded.parent.parent), "--all-frames")
    assert result.returncode == 0, result.stdout
    assert "1 file(s) checked, 0 with problems" in result.stdout


def test_a_truncated_dataset_is_named(damaged):
    with h5py.File(damaged, "r+") as f:
        n = f["timestamps"].shape[0]
        f["observations/ft/value"].resize(n - 5, axis=0)
    code, problems = validate(damaged)
    assert code == 1
    assert problems == [f"/observations/ft/value: {n - 5} rows, but /timestamps has {n} "
                        "(truncated?)"]


def test_a_wrong_dtype_is_named(damaged):
    with h5py.File(damaged, "r+") as f:
        qpos = f["observations/arm/qpos"][:]
        del f["observations/arm/qpos"]
        f.create_dataset("observations/arm/qpos", data=qpos.astype(np.float32))
    code, problems = validate(damaged)
    assert code == 1
    assert problems == ["/observations/arm/qpos: dtype float32, expected float64"]


def test_non_monotonic_timestamps_are_named(damaged):
    with h5py.File(damaged, "r+") as f:
        ts = f["timestamps"]
        ts[10], ts[11] = ts[11], ts[10]
    code, problems = validate(damaged)
    assert code == 1
    assert len(problems) == 1 and problems[0].startswith("/timestamps: not increasing at row 11")


@pytest.mark.parametrize("attr", ["task", "episode_id", "rig_config", "started_at"])
def test_missing_metadata_is_named(damaged, attr):
    with h5py.File(damaged, "r+") as f:
        del f.attrs[attr]
    code, problems = validate(damaged)
    assert code == 1
    assert problems == [f"/: missing attribute '{attr}'"]


def test_a_frame_that_does_not_decode_is_named(damaged):
    with h5py.File(damaged, "r+") as f:
        frames = f["observations/images/cam_high"]
        n = frames.shape[0]
        junk = np.empty(1, dtype=object)
        junk[0] = np.frombuffer(b"not a jpeg at all", np.uint8)
        space = frames.id.get_space()
        space.select_hyperslab((n - 1,), (1,))
        frames.id.write(h5py.h5s.create_simple((1,)), space, junk)
    code, problems = validate(damaged)
    assert code == 1
    assert len(problems) == 2, problems  # its bytes are not those written, and do not decode
    assert problems[0].startswith(f"/observations/images/cam_high: rows {n - 1} corrupt")
    assert problems[1].startswith(f"/observations/images/cam_high[{n - 1}]: does not decode")


# -- JPEG/PNG frames carry a CRC-32 each (/checksums/images/<camera>) -------------------------

def test_each_frame_carries_the_crc32_of_its_bytes(recorded):
    with h5py.File(recorded) as f:
        for cam in f["observations/images"]:
            frames = f[f"observations/images/{cam}"][:]
            stored = f[f"checksums/images/{cam}"][:]
            assert stored.dtype == np.uint32 and len(stored) == len(frames)
            assert stored.tolist() == [zlib.crc32(x.tobytes()) for x in frames]
    result = run_cli("validate", str(recorded))
    assert result.returncode == 0, result.stdout
    assert "JPEG/PNG frame's CRC-32 verified" in result.stdout


def test_bytes_flipped_inside_a_stored_frame_are_named(damaged):
    """Bit rot inside one JPEG frame as it lies on disk: the frame still decodes (to other
    pixels), so only its checksum can tell; validate names the dataset and the row."""
    with h5py.File(damaged) as f:
        before = [x.tobytes() for x in f["observations/images/cam_left_wrist"][:]]
    data = bytearray(damaged.read_bytes())
    # a frame stored once: a tick that shows the frame of the tick before (a late frame on a
    # loaded host) stores the same bytes again, and flipping one copy would leave the other
    row = next(r for r in range(len(before) // 2, len(before)) if before.count(before[r]) == 1)
    at = data.find(before[row])
    assert at > 0 and data.find(before[row], at + 1) < 0  # stored once
    middle = at + len(before[row]) // 2  # inside the entropy-coded scan
    data[middle:middle + 2] = bytes(b ^ 0x10 for b in data[middle:middle + 2])
    damaged.write_bytes(bytes(data))
    with h5py.File(damaged) as f:
        after = f["observations/images/cam_left_wrist"][row]
        assert after.tobytes() != before[row]
        assert decode_frame(after, "jpeg").shape == (f["observations/images/cam_left_wrist"]
                                                     .attrs["height"],
                                                     f["observations/images/cam_left_wrist"]
                                                     .attrs["width"], 3)
    code, problems = validate(damaged)
    assert code == 1
    assert problems == [f"/observations/images/cam_left_wrist: rows {row} corrupt (CRC-32 "
                        f"mismatch in 1 of {len(before)} frames): the file was damaged after "
                        "it was written"]
    # the sampled decode alone would have passed it
    assert run_cli("validate", "--quick", str(damaged)).returncode == 0


def test_a_file_written_before_frame_checksums_validates_and_says_so(damaged):
    """As an older file is: no /checksums group, a layout without `frame_checksums`."""
    with h5py.File(damaged, "r+") as f:
        del f["checksums"]
        layout = json.loads(f.attrs["layout"])
        del layout["frame_checksums"]
        f.attrs["layout"] = json.dumps(layout)
    result = run_cli("validate", str(damaged))
    assert result.returncode == 0, result.stdout
    assert "1 file(s) have no frame checksums (written before them)" in result.stdout


def test_a_missing_frame_checksum_dataset_is_named(damaged):
    with h5py.File(damaged, "r+") as f:
        del f["checksums/images/cam_high"]
    code, problems = validate(damaged)
    assert code == 1
    assert problems == ["/checksums/images/cam_high: missing"]


def test_missing_efficiency_accounts_and_a_missing_dataset_are_named(damaged):
    with h5py.File(damaged, "r+") as f:
        del f["quality/ft/dt_ns"]
        del f["efficiency"].attrs["availability"]
    code, problems = validate(damaged)
    assert code == 1
    assert sorted(problems) == ["/efficiency: attribute 'availability' field required",
                                "/quality/ft/dt_ns: missing"]


def test_not_an_episode(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    code, problems = validate(junk)
    assert code == 1 and problems[0].startswith("/: cannot open as HDF5")


def test_a_folder_holding_only_a_partial_says_what_to_do(recorded, tmp_path):
    station = tmp_path / "sim-01"
    station.mkdir()
    shutil.copy(recorded, station / "ep_crashed.h5.partial")  # what a killed recorder leaves
    result = run_cli("validate", str(tmp_path))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    summary = result.stdout.strip().splitlines()[-1]
    assert f"1 unfinished partial: run `collector recover {tmp_path}`" in summary
    assert "with problems" not in summary  # nothing was checked, so nothing to count


def test_a_partial_beside_valid_episodes_fails_with_the_same_advice(recorded, tmp_path):
    shutil.copy(recorded, tmp_path / "ep_ok.h5")
    shutil.copy(recorded, tmp_path / "ep_crashed.h5.partial")
    result = run_cli("validate", str(tmp_path))
    assert result.returncode == 1
    summary = result.stdout.strip().splitlines()[-1]
    assert summary == (f"1 file(s) checked, 0 with problems; 1 unfinished partial: "
                       f"run `collector recover {tmp_path}`")
    assert "validating" in result.stderr and "1/1" in result.stderr  # the folder's progress


def test_an_empty_folder_is_named(tmp_path):
    result = run_cli("validate", str(tmp_path))
    assert result.returncode == 1
    assert f"no finished episode (*.h5) to check under {tmp_path}" in result.stdout
