"""Reading, validating, recovering and using video-coded (format 2) episodes.

The episodes come from `tests/video_episodes.py`: a real recording with two cameras re-stored
as video (h264 at 10 fps under a 30 Hz grid, av1 at 30 fps) over a pan of a real photograph."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from collector.storage.export import export_robomimic
from collector.storage.reader import open_episode
from collector.storage.recover import recover_partial
from collector.storage.validate import check_file, validate_file
from schemas.layout import IMAGES, NO_FRAME
from tests.conftest import run_cli
from tests.video_episodes import garble, record_format1, to_video, write_partial

MIN_PSNR = 30.0  # dB: decoded frames against the frames encoded (crf defaults, 320x240)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-9)))


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("video")
    jpeg = record_format1(root / "recorded")
    video = root / "video.h5"
    originals = to_video(jpeg, video)
    return {"jpeg": jpeg, "video": video, "originals": originals, "root": root}


@pytest.mark.parametrize("cam", ["cam_high", "cam_left_wrist"])
def test_frames_by_index_and_in_order_are_the_encoded_frames(episodes, cam):
    original = episodes["originals"][cam]
    with open_episode(episodes["video"]) as ep:
        frames = ep.frames(cam)
        assert len(frames) == len(original)
        in_order = [f.copy() for f in frames]
        assert len(in_order) == len(original)
        order = np.random.default_rng(3).permutation(len(original))
        for i in order:  # seeks back and forth: each must equal the sequential decode
            assert np.array_equal(frames[int(i)], in_order[i]), f"frame {i}"
        assert min(psnr(a, b) for a, b in zip(in_order, original, strict=True)) > MIN_PSNR
        with pytest.raises(IndexError):
            frames[len(original)]


def test_ticks_show_the_frame_their_index_names(episodes):
    with open_episode(episodes["video"]) as ep, h5py.File(episodes["video"]) as f:
        index = f[f"{IMAGES}/cam_high"][:]
        ticks, frames = ep.images("cam_high"), ep.frames("cam_high")
        assert len(ticks) == len(ep) == len(index)
        repeated = np.flatnonzero(np.diff(index) == 0)
        assert repeated.size > len(index) / 2  # 10 fps under 30 Hz: most ticks repeat
        for t in range(len(ticks)):
            expected = (np.zeros(ticks.shape, np.uint8) if index[t] == NO_FRAME
                        else frames[int(index[t])])
            assert np.array_equal(ticks[t], expected), f"tick {t}"


def test_a_video_episode_and_a_jpeg_one_validate(episodes):
    result = run_cli("validate", str(episodes["video"]), str(episodes["jpeg"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every one decodes" in result.stdout
    check = check_file(episodes["video"])
    assert {v.camera: v.decodable for v in check.videos} == {
        cam: len(frames) for cam, frames in episodes["originals"].items()}


@pytest.mark.parametrize("how", ["zeros", "random"])
def test_validate_names_the_camera_and_frame_that_does_not_decode(episodes, tmp_path, how):
    bad = tmp_path / "bad.h5"
    shutil.copyfile(episodes["video"], bad)
    garble(bad, "cam_high", 7, how)
    result = run_cli("validate", str(bad))
    assert result.returncode == 1
    assert "camera 'cam_high' frame 7 does not decode" in result.stdout, result.stdout


def test_validate_finds_frame_indices_that_go_back_or_past_the_video(episodes, tmp_path):
    bad = tmp_path / "bad.h5"
    shutil.copyfile(episodes["video"], bad)
    with h5py.File(bad, "r+") as f:
        ds = f[f"{IMAGES}/cam_left_wrist"]
        ds[10], ds[20] = 3, 999
    problems = " ".join(validate_file(bad))
    assert "goes back from frame 9 to 3 at tick 10" in problems
    assert "tick 20 shows frame 999" in problems


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.slow
def test_recover_keeps_every_flushed_tick_and_its_frames(episodes, tmp_path, seed):
    rng = np.random.default_rng(seed)
    batches = 8
    keep = int(rng.integers(1, batches + 1))
    partial = tmp_path / "ep.h5.partial"
    flushed = write_partial(episodes["video"], partial, batches, keep)
    result = recover_partial(partial)
    assert result.ticks == flushed
    assert validate_file(result.path) == []
    with open_episode(result.path) as ep, open_episode(episodes["video"]) as whole:
        for cam in episodes["originals"]:
            frames = ep.frames(cam)
            assert len(frames) == result.frames[cam]
            assert np.array_equal(frames[len(frames) - 1], whole.frames(cam)[len(frames) - 1])
            assert ep.images(cam).frame_index.max() < len(frames)


@pytest.mark.parametrize("how", ["zeros", "random"])
def test_recover_cuts_at_the_first_packet_that_does_not_decode(episodes, tmp_path, how):
    partial = tmp_path / "ep.h5.partial"
    write_partial(episodes["video"], partial, 6, 6)
    garble(partial, "cam_left_wrist", 25, how)
    result = recover_partial(partial)
    assert result.frames["cam_left_wrist"] == 25
    assert "cam_left_wrist cut at frame 25" in result.note
    with h5py.File(episodes["video"]) as f:
        first_showing = int(np.flatnonzero(f[f"{IMAGES}/cam_left_wrist"][:] >= 25)[0])
    assert result.ticks == first_showing
    assert validate_file(result.path) == []


def test_inspect_shows_codec_and_bytes_per_frame(episodes):
    result = run_cli("inspect", str(episodes["video"]))
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    frames = len(episodes["originals"]["cam_high"])
    assert "h264 gop 10" in rows["cam_high"] and f"{frames}x240x320x3" in rows["cam_high"]
    assert "av1 gop 10" in rows["cam_left_wrist"]
    assert "jpeg" in rows["cam_right_wrist"] and "kB/frame" in rows["cam_right_wrist"]


def test_export_writes_the_decoded_frames_each_tick_shows(episodes, tmp_path):
    out = tmp_path / "robomimic.hdf5"
    export_robomimic([episodes["video"]], out, {"success", "failure", "truncated"})
    with h5py.File(out) as f, open_episode(episodes["video"]) as ep:
        exported = f["data/demo_0/obs/cam_high_image"]
        assert exported.shape == (len(ep), 240, 320, 3)
        ticks = ep.images("cam_high")
        for t in (0, 5, len(ep) - 1):
            assert np.array_equal(exported[t], ticks[t])


def test_replay_to_video_and_to_the_pipeline_device(episodes, tmp_path):
    out = tmp_path / "mosaic.mp4"
    result = run_cli("replay", str(episodes["video"]), "--to", "video", str(out))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
    from collector.replay.device import ReplayClock, ReplayDevice
    from schemas.devices import ReplayConfig

    device = ReplayDevice(ReplayConfig(name="cam_high", type="replay",
                                       episode=str(episodes["video"]), kind="camera"),
                          ReplayClock())
    try:  # every stored frame plays again, at the camera's rate, in capture order
        assert device.info.rate_hz == 10
        assert len(device.times) == len(episodes["originals"]["cam_high"])
        first = device._values(slice(0, 3))["image"]
        with open_episode(episodes["video"]) as ep:
            assert np.array_equal(first[2], ep.frames("cam_high")[2])
    finally:
        device.close()
