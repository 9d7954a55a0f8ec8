"""`collector replay EPISODE --to video OUT --camera NAME`: one camera's own video.

A video-coded camera's stored packets are remuxed, not re-encoded: the file is read back with
PyAV's demuxer (a different path from the episode reader's bare decoder): every packet must be
the stored packet byte for byte, and every frame the reader's frame (up to the RGB conversion:
the reader converts with exact rounding and bicubic chroma, PyAV's default does not). The
episodes come from `tests/video_episodes.py` (h264 at 10 fps
under a 30 Hz grid, av1 at 30 fps, a JPEG camera beside them)."""

from __future__ import annotations

import re

import av
import numpy as np
import pytest

from collector.replay.camera_video import TIME_BASE
from collector.storage.reader import open_episode
from core.video import VideoDecoder
from tests.conftest import run_cli
from tests.video_episodes import record_format1, to_video

demuxed: list[bytes] = []  # the packets of the last file `decoded` read
extradata: list[bytes] = [b""]  # and its stream's extradata
durations: list[float] = [0.0, 0.0]  # and its duration in seconds, its average frame rate
CONTAINER_BYTES, PER_FRAME = 4096, 64  # the mp4 header and index; measured ~1.1 kB + 19-52 B


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    root = tmp_path_factory.mktemp("camera_video")
    video = root / "video.h5"
    to_video(record_format1(root / "recorded"), video)
    return video


def decoded(path) -> tuple[list[np.ndarray], list[float], list[bool], av.VideoStream, str]:
    """Every frame of the file's video stream with its time, the keyframe flag of each packet,
    the stream and its codec name, through PyAV's demuxer; `demuxed` its packets' bytes."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys, frames, times = [], [], []
        demuxed.clear()
        extradata[:] = [stream.codec_context.extradata or b""]
        for packet in container.demux(stream):
            if packet.size:
                keys.append(packet.is_keyframe)
                demuxed.append(bytes(packet))
            for frame in packet.decode():
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.time))
        # mkv and some mp4s carry no per-stream duration: the container's then
        seconds = (float(stream.duration * stream.time_base) if stream.duration is not None
                   else container.duration / av.time_base)
        durations[:] = [seconds, float(stream.average_rate)]  # read while the file is open
        return frames, times, keys, stream, stream.codec_context.name


def reader_decoded(attrs: dict) -> list[np.ndarray]:
    """The last file's packets through the reader's own decoder (with the container's
    extradata: mp4 stores h264 length-prefixed): the reader's frames exactly, if and only if
    they are the stored packets."""
    return list(VideoDecoder({**attrs, "extradata": extradata[0]}).decode(
        [np.frombuffer(p, np.uint8) for p in demuxed]))


@pytest.mark.parametrize("cam, codec", [("cam_high", "h264"), ("cam_left_wrist", "av1")])
def test_a_video_camera_is_remuxed_frame_for_frame(episode, tmp_path, cam, codec):
    out = tmp_path / f"{cam}.mp4"
    result = run_cli("replay", str(episode), "--to", "video", str(out), "--camera", cam)
    assert result.returncode == 0, result.stderr
    with open_episode(episode) as ep:
        video = ep.frames(cam)
        stored = list(video)
        keyframe = video.keyframe.tolist()
        capture = video.times()["capture_ns"]
        packet_bytes = video.encoded_bytes()
        fps = video.fps
        attrs = dict(ep.file[f"videos/{cam}"].attrs)
    assert f"remuxed {len(stored)} packets (no re-encode)" in result.stdout
    frames, times, keys, _, name = decoded(out)
    assert codec in name  # h264, or libdav1d for av1
    # two groups of pictures or more (a 10 fps camera for 2 s under load can give exactly 20)
    assert len(frames) == len(stored) and sum(keyframe) >= 2
    # remuxed, not re-encoded: the file's packets, through the reader's own decoder (with the
    # container's extradata: mp4 stores h264 length-prefixed), give the reader's frames exactly
    for i, (got, want) in enumerate(zip(reader_decoded(attrs), stored, strict=True)):
        assert np.array_equal(got, want), f"frame {i}'s packet is not the stored one"
    for i, (got, want) in enumerate(zip(frames, stored, strict=True)):
        assert psnr(got, want) > 35, f"frame {i}: PyAV's own conversion is far off"
    assert keys == keyframe
    # each frame at its capture time from the first, to the timescale's 1/90000 s
    assert np.allclose(times, (capture - capture[0]) / 1e9, atol=float(TIME_BASE))
    duration = durations[0]
    assert duration == pytest.approx((capture[-1] - capture[0]) / 1e9 + 1 / fps,
                                     abs=float(TIME_BASE))
    # the frames' own rate: the grid of a format-1 episode repeats a late frame on a loaded
    # host, so its distinct frames (those the video holds) can come slower than the camera's fps
    assert durations[1] == pytest.approx(len(stored) / duration, rel=0.05)
    # byte-cheap: the packets and an index, no new pictures
    size = out.stat().st_size
    assert 0.99 * packet_bytes <= size <= packet_bytes + CONTAINER_BYTES + PER_FRAME * len(stored)


def test_part_of_an_episode_starts_at_the_keyframe_before_it(episode, tmp_path):
    out = tmp_path / "part.mkv"
    result = run_cli("replay", str(episode), "--to", "video", str(out), "--camera",
                     "cam_left_wrist", "--start", "0.5", "--end", "1.2")
    assert result.returncode == 0, result.stderr
    with open_episode(episode) as ep:
        video = ep.frames("cam_left_wrist")
        shown = ep.images("cam_left_wrist").frame_index[15:36]  # ticks at 0.5 .. 1.2 s (30 Hz)
        first = int(re.search(r"frames from (\d+)", result.stdout).group(1))
        count = int(re.search(r"remuxed (\d+) packets", result.stdout).group(1))
        assert video.keyframe[first] and not video.keyframe[first + 1:shown.min() + 1].any()
        assert first + count == shown.max() + 1
        attrs = dict(ep.file["videos/cam_left_wrist"].attrs)
        frames, _, keys, _, _ = decoded(out)
        assert len(frames) == count and keys[0]
        for i, got in enumerate(reader_decoded(attrs)):
            assert np.array_equal(got, video[first + i]), f"frame {first + i}"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-9)))


def test_a_jpeg_camera_is_re_encoded_and_says_so(episode, tmp_path):
    out = tmp_path / "jpeg.mp4"
    result = run_cli("replay", str(episode), "--to", "video", str(out), "--camera",
                     "cam_right_wrist")
    assert result.returncode == 0, result.stderr
    with open_episode(episode) as ep:
        ticks = len(ep)
        images = ep.images("cam_right_wrist")
        expected = [images[t] for t in range(ticks)]
        seconds = (ep.timestamps - ep.timestamps[0]) / 1e9
    assert (f"re-encoded {ticks} frames (cam_right_wrist is stored as jpeg, one image per tick)"
            in result.stdout)
    frames, times, _, _, name = decoded(out)
    assert name == "h264" and len(frames) == ticks
    assert np.allclose(times, seconds, atol=float(TIME_BASE))
    assert min(psnr(a, b) for a, b in zip(frames, expected, strict=True)) > 30


def test_the_mosaic_says_it_is_re_encoded(episode, tmp_path):
    result = run_cli("replay", str(episode), "--to", "video", str(tmp_path / "m.mp4"),
                     "--end", "0.3")
    assert result.returncode == 0, result.stderr
    assert "re-encoded 9 frames (a mosaic of every camera" in result.stdout


@pytest.mark.parametrize("args, problem, code", [
    (["--camera", "cam_nose"], "--camera cam_nose: no such camera", 2),
    (["--camera", "cam_high", "--to", "video", "{tmp}/v.gif"], "written as .mp4 or .mkv", 1),
    (["--camera", "cam_high", "--frames", "4"], "--frames draws on the mosaic", 1),
    (["--camera", "cam_high", "--fields", "ft.value[0]"], "--fields draws on the mosaic", 1),
])
def test_bad_camera_requests_fail_in_one_line(episode, tmp_path, args, problem, code):
    out = tmp_path / "v.mp4"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_cli("replay", str(episode), "--to", "video", str(out), *args)
    assert result.returncode == code, result.stderr
    assert problem in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())

