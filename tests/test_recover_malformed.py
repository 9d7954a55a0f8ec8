"""`collector recover` on damaged partials, made with h5py from real recorded episodes: each one
ends in a clean outcome (recovered and valid, or set aside with its reason), never a traceback
or a hang; a damaged stream costs that stream, and one bad file never blocks the others.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.storage.recover import DROPPED_ATTR
from core.codec import decode_frame
from tests.conftest import partials, record_one, run_cli
from tests.killed_partials import sigkilled_partial
from tests.video_episodes import garble

TIMEOUT_S = "20"  # no progress for this long: the worker is killed (the bound, not a wait)


def _record(root: Path, *overrides: str) -> Path:
    return Path(record_one(root, 2.0, "storage.keep_raw=true", *overrides).path)


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("recorded")
    return {"jpeg": _record(root / "jpeg", "pipeline.images.encoding=jpeg"),
            "video": _record(root / "video", "pipeline.images.encoding=h264")}


# -- the malformed set: (episode, how it is damaged, what recover must say) -------------------

def _delete(path: str):
    def damage(f: h5py.File) -> None:
        del f[path]
    return damage


def _del_attr(path: str, name: str):
    def damage(f: h5py.File) -> None:
        del f[path].attrs[name]
    return damage


def _set_row(path: str, row: int, value):
    def damage(f: h5py.File) -> None:
        f[path][row] = value
    return damage


def _retype(path: str, dtype: str):
    def damage(f: h5py.File) -> None:
        data = f[path][:].astype(dtype)
        del f[path]
        f.create_dataset(path, data=data, maxshape=(None, *data.shape[1:]))
    return damage


def _shorten(path: str, rows: int):
    def damage(f: h5py.File) -> None:
        f[path].resize(rows, axis=0)
    return damage


def _swap_rows(path: str, a: int, b: int):
    def damage(f: h5py.File) -> None:
        ds = f[path]
        x, y = ds[a], ds[b]
        ds[a], ds[b] = y, x
    return damage


def _set_root(name: str, value):
    def damage(f: h5py.File) -> None:
        f.attrs[name] = value
    return damage


def _zero_frame_bytes(camera: str, row: int):
    """A JPEG frame's bytes zeroed in their middle after they were written (its CRC-32 left
    as the writer stored it), as a zeroed disk block leaves them."""
    def damage(f: h5py.File) -> None:
        ds = f[f"observations/images/{camera}"]
        frame = np.array(ds[row])
        frame[len(frame) // 4: len(frame) // 2] = 0
        ds[row] = frame
    return damage


# expected: ("recovered", substring of a recovery_dropped line or "" for none) or
# ("rejected", substring of the reason)
CASES = {
    "dataset_missing": ("jpeg", _delete("observations/ft/value"),
                        ("recovered", "stream ft: /observations/ft/value missing")),
    "image_dataset_missing": ("jpeg", _delete("observations/images/cam_high"),
                              ("recovered", "stream cam_high: /observations/images/cam_high "
                                            "missing")),
    "quality_group_missing": ("jpeg", _delete("quality/arm"),
                              ("recovered", "stream arm: /quality/arm/capture_ns missing")),
    "quality_flag_missing": ("jpeg", _delete("quality/cam_left_wrist/blurred"),
                             ("recovered", "stream cam_left_wrist: quality blurred dropped")),
    "image_height_attr_missing": ("jpeg", _del_attr("observations/images/cam_high", "height"),
                                  ("recovered", "lacks attribute(s) height")),
    "image_encoding_attr_missing": ("jpeg",
                                    _del_attr("observations/images/cam_right_wrist",
                                              "encoding"),
                                    ("recovered", "lacks attribute(s) encoding")),
    "raw_dataset_missing": ("jpeg", _delete("raw/ft/value"),
                            ("recovered", "stream ft: raw samples dropped")),
    "raw_rate_attr_missing": ("jpeg", _del_attr("raw/arm", "rate_hz"),
                              ("recovered", "stream arm: raw samples dropped")),
    "raw_arrival_back": ("jpeg", _set_row("raw/ft/arrival_ns", 100, 0),
                         ("recovered", "stream ft: raw samples cut at 100")),
    "timestamp_out_of_order": ("jpeg", _set_row("timestamps", 20, 0),
                               ("recovered", "1 tick(s) whose time is out of order (first at "
                                             "row 20)")),
    "timestamps_swapped": ("jpeg", _swap_rows("timestamps", 30, 31),
                           ("recovered", "1 tick(s) whose time is out of order")),
    "timestamp_far_future": ("jpeg", _set_row("timestamps", 25, 2**62),
                             ("recovered", "1 tick(s) whose time is out of order")),
    "wrong_dtype": ("jpeg", _retype("observations/arm/qpos", "float32"),
                    ("recovered", "/observations/arm/qpos has dtype float32")),
    "wrong_dtype_timestamps": ("jpeg", _retype("timestamps", "float64"),
                               ("rejected", "/timestamps has dtype float64")),
    "stream_shorter": ("jpeg", _shorten("observations/ft/value", 20),
                       ("recovered", "stream ft: only 20 of")),
    "quality_shorter": ("jpeg", _shorten("quality/cam_high/missing", 10),
                        ("recovered", "stream cam_high: only 10 of")),
    "timestamps_missing": ("jpeg", _delete("timestamps"), ("rejected", "no /timestamps")),
    "layout_missing": ("jpeg", _del_attr("/", "layout"), ("rejected", "no layout attribute")),
    "layout_garbage": ("jpeg", _set_root("layout", "{not json"),
                       ("rejected", "does not describe a layout")),
    "rig_config_garbage": ("jpeg", _set_root("rig_config", "a: [unclosed"),
                           ("recovered", "rig_config does not parse")),
    "metadata_missing": ("jpeg", _del_attr("/", "episode_id"),
                         ("rejected", "start metadata incomplete")),
    "control_hz_text": ("jpeg", _set_root("control_hz", "fast"),
                        ("rejected", "start metadata incomplete")),
    "frame_bytes_zeroed": ("jpeg", _zero_frame_bytes("cam_left_wrist", 30),
                           ("recovered", "camera cam_left_wrist: 1 frame(s) damaged after they "
                                         "were written (CRC-32 mismatch, rows 30)")),
    "first_frame_bytes_zeroed": ("jpeg", _zero_frame_bytes("cam_high", 0),
                                 ("recovered", "camera cam_high: 1 frame(s) damaged")),
    "video_group_missing": ("video", _delete("videos/cam_high"),
                            ("recovered", "stream cam_high: /videos/cam_high missing")),
    "video_codec_attr_missing": ("video", _del_attr("videos/cam_left_wrist", "codec"),
                                 ("recovered", "/videos/cam_left_wrist lacks attribute(s) codec")),
    "video_packets_shorter": ("video", _shorten("videos/cam_high/keyframe", 5),
                              ("recovered", "")),
    "video_frame_index_back": ("video", _set_row("observations/images/cam_high", 40, 0),
                               ("recovered", "")),
}


def _make(episodes: dict[str, Path], folder: Path, name: str) -> Path:
    kind, damage, _ = CASES[name]
    day = folder / "sim-01" / "2026-12-01"
    day.mkdir(parents=True, exist_ok=True)
    partial = day / f"{name}.h5.partial"
    shutil.copyfile(episodes[kind], partial)
    with h5py.File(partial, "r+") as f:
        damage(f)
    return partial


@pytest.fixture(scope="module")
def recovered_set(episodes, tmp_path_factory) -> dict:
    """Every malformed partial in one folder, one `collector recover` over all of them (so no
    file blocks another), plus the byte-level damage: a zeroed block, a corrupt video packet."""
    folder = tmp_path_factory.mktemp("malformed")
    for name in CASES:
        _make(episodes, folder, name)
    day = folder / "sim-01" / "2026-12-01"
    zeroed = day / "zeroed_block.h5.partial"
    data = bytearray(episodes["jpeg"].read_bytes())
    data[len(data) // 2: len(data) // 2 + 65536] = bytes(65536)
    zeroed.write_bytes(bytes(data))
    corrupt = day / "video_corrupt_packet.h5.partial"
    shutil.copyfile(episodes["video"], corrupt)
    garble(corrupt, "cam_left_wrist", 12, "random")
    done = run_cli("recover", str(folder), "--timeout", TIMEOUT_S, timeout=900)
    return {"folder": folder, "day": day, "done": done}


def _outcome(recovered_set: dict, name: str) -> tuple[str, str]:
    """("recovered", the recovered file's dropped lines) or ("rejected", recover's line)."""
    done, day = recovered_set["done"], recovered_set["day"]
    final = day / f"{name}.h5"
    rejected = day.parent / "rejected" / f"{name}.h5.unrecoverable"
    assert not (day / f"{name}.h5.partial").exists(), done.stdout
    assert not list(day.glob(f"{name}.h5.recovering")) and not list(day.glob("*.unlocked"))
    if final.exists():
        assert f"recovered {final}" in done.stdout
        with h5py.File(final, "r") as f:
            return "recovered", "\n".join(str(x) for x in f.attrs.get(DROPPED_ATTR, []))
    assert rejected.exists(), done.stdout
    [line] = [x for x in done.stdout.splitlines() if f"{name}.h5.partial" in x]
    return "rejected", line


@pytest.mark.slow
def test_the_malformed_set_ends_without_a_traceback(recovered_set):
    done = recovered_set["done"]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode in (0, 1), done.stderr
    assert f"{len(CASES) + 2} partial file(s)" in done.stdout
    assert not partials(recovered_set["folder"])
    recovered = sorted(recovered_set["day"].glob("*.h5"))
    checked = run_cli("validate", *map(str, recovered), "--all-frames")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_damage_costs_what_it_damaged(recovered_set, name):
    expected_kind, expected_text = CASES[name][2]
    kind, text = _outcome(recovered_set, name)
    assert kind == expected_kind, text
    assert expected_text in text, text
    if kind == "recovered":
        # said on the command line too, one line per thing dropped
        for line in filter(None, text.split("\n")):
            assert f"dropped: {line}" in recovered_set["done"].stdout


def test_a_dropped_stream_leaves_the_others_intact(recovered_set, episodes):
    with h5py.File(recovered_set["day"] / "dataset_missing.h5") as f, \
            h5py.File(episodes["jpeg"]) as whole:
        assert "ft" not in f["observations"] and "ft" not in f["quality"]
        n = f["timestamps"].shape[0]
        assert n == whole["timestamps"].shape[0]  # not a tick lost for the other streams
        np.testing.assert_array_equal(f["observations/arm/qpos"][:],
                                      whole["observations/arm/qpos"][:])
        # the accounts count the dropped stream's ticks as missing, not as never expected
        assert f["efficiency"].attrs["loss_samples.missing:ft"] == n


def test_one_tick_out_of_order_costs_that_tick(recovered_set, episodes):
    with h5py.File(recovered_set["day"] / "timestamp_out_of_order.h5") as f, \
            h5py.File(episodes["jpeg"]) as whole:
        kept = np.delete(np.arange(whole["timestamps"].shape[0]), 20)
        np.testing.assert_array_equal(f["timestamps"][:], whole["timestamps"][:][kept])
        np.testing.assert_array_equal(f["observations/ft/value"][:],
                                      whole["observations/ft/value"][:][kept])
        assert [bytes(x) for x in f["observations/images/cam_high"][:]] == \
            [bytes(x) for x in whole["observations/images/cam_high"][:][kept]]


def test_a_damaged_jpeg_frame_becomes_a_missing_tick_showing_the_frame_before(
        recovered_set, episodes):
    # seen: a zeroed block in a JPEG frame was copied as it was, and the recovered file
    # failed `collector validate` (rows 30 corrupt: CRC-32 mismatch)
    camera = "cam_left_wrist"
    with h5py.File(recovered_set["day"] / "frame_bytes_zeroed.h5") as f, \
            h5py.File(episodes["jpeg"]) as whole:
        frames = f[f"observations/images/{camera}"]
        missing = f[f"quality/{camera}/missing"][:]
        was_missing = whole[f"quality/{camera}/missing"][:]
        assert missing[30] and (missing ^ was_missing).sum() == (0 if was_missing[30] else 1)
        assert bytes(frames[30]) == bytes(whole[f"observations/images/{camera}"][29])
        for row in (29, 31):  # its neighbours untouched
            assert bytes(frames[row]) == bytes(whole[f"observations/images/{camera}"][row])
        # counted where every reader of the accounts looks
        assert f["efficiency"].attrs[f"loss_samples.missing:{camera}"] == missing.sum()


def test_a_damaged_first_frame_shows_black_as_a_tick_before_any_frame_does(recovered_set):
    with h5py.File(recovered_set["day"] / "first_frame_bytes_zeroed.h5") as f:
        assert f["quality/cam_high/missing"][0]
        first = decode_frame(f["observations/images/cam_high"][0], "jpeg")
        assert first.shape == (480, 640, 3) and first.max() == 0


def test_a_corrupt_video_packet_cuts_that_camera_where_it_stops_decoding(recovered_set):
    kind, text = _outcome(recovered_set, "video_corrupt_packet")
    assert kind == "recovered" and "video camera cam_left_wrist cut at frame 12" in text


def test_a_zeroed_block_ends_cleanly(recovered_set):
    kind, text = _outcome(recovered_set, "zeroed_block")
    assert kind in ("recovered", "rejected"), text


# -- truncated partials ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def killed_partial(tmp_path_factory) -> Path:
    """A real partial: `collector record` SIGKILLed once 60 ticks are flushed."""
    partial = sigkilled_partial(tmp_path_factory.mktemp("killed"))
    kept = tmp_path_factory.mktemp("pristine") / partial.name
    shutil.copyfile(partial, kept)
    return kept


def truncated_recover(partial: Path, folder: Path, lengths: list[int]) -> dict[str, int]:
    """Copies of `partial` cut at each length, recovered in one run: each ends, recovered (and
    valid) or set aside with its reason. Returns the tally."""
    day = folder / "sim-01" / "2026-12-01"
    day.mkdir(parents=True)
    data = partial.read_bytes()
    for n in lengths:
        (day / f"cut-{n}.h5.partial").write_bytes(data[:n])
    done = run_cli("recover", str(folder), "--timeout", "5", timeout=3600)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode in (0, 1), done.stderr
    assert not partials(folder) and not list(day.glob("*.recovering"))
    tally = {"recovered": 0, "timed_out": 0, "set_aside": 0}
    for n in lengths:
        [line] = [x for x in done.stdout.splitlines()
                  if f"/cut-{n}.h5:" in x or f"/cut-{n}.h5.partial:" in x]
        if line.startswith("recovered"):
            tally["recovered"] += 1
        else:
            assert (folder / "sim-01" / "rejected" / f"cut-{n}.h5.unrecoverable").exists()
            assert "nothing salvaged" in line
            tally["timed_out" if "timed out after 5 s" in line else "set_aside"] += 1
    recovered = sorted(day.glob("*.h5"))
    if recovered:
        checked = run_cli("validate", *map(str, recovered))
        assert checked.returncode == 0, checked.stdout
    print("truncated", len(lengths), tally)
    return tally


@pytest.mark.slow
def test_truncated_partials_each_end(killed_partial, tmp_path):
    size = killed_partial.stat().st_size
    lengths = [4096, 20_000, size // 8, size // 4, size // 2, 3 * size // 4, size - 4096,
               size - 1]
    tally = truncated_recover(killed_partial, tmp_path, lengths)
    assert sum(tally.values()) == len(lengths)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_truncated_at_a_hundred_random_lengths(killed_partial, tmp_path):
    size = killed_partial.stat().st_size
    lengths = sorted(random.Random(18).sample(range(49, size), 100))
    tally = truncated_recover(killed_partial, tmp_path, lengths)
    assert sum(tally.values()) == 100


def test_a_rig_config_that_does_not_parse_is_kept_aside_and_the_file_validates(recovered_set):
    """validate refuses a rig_config that is not the station's mapping, and what recover writes
    must validate: the text is kept under its own attribute, rig_config says nothing known."""
    with h5py.File(recovered_set["day"] / "rig_config_garbage.h5") as f:
        assert f.attrs["rig_config_unparsed"] == "a: [unclosed"
        assert f.attrs["rig_config"] == "{}\n"
        assert any("rig_config does not parse" in x for x in f.attrs["recovery_dropped"])
