"""core/video.py against the real encoders (libx264, SVT-AV1) and decoders (h264, libdav1d) in
PyAV's FFmpeg, on real photographs panned across the frame."""

from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest
from av.video.reformatter import ColorRange

from collector.config import load_station
from core.errors import ConfigError, EpisodeFileError
from core.video import (
    TO_RGB,
    TO_YUV,
    VideoDecoder,
    VideoEncoder,
    decode_last,
    decode_run,
    keyframe_before,
    yuv_picture,
)
from schemas.station import ImageEncoding
from tests.conftest import SIM_CONFIG
from tests.scenes import wrist_scene

CODECS = ("h264", "av1")


def psnr(decoded: np.ndarray, raw: np.ndarray) -> float:
    mse = np.mean((decoded.astype(np.float64) - raw.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def encode(spec: ImageEncoding, frames: np.ndarray, batches: list[int] | None = None):
    """Frames through one encoder in `batches` (sizes), times distinct per clock."""
    n, h, w = frames.shape[:3]
    enc = VideoEncoder(spec, w, h, 30.0)
    capture = 10_000 + 33_333_333 * np.arange(n, dtype=np.int64)
    device, arrival = capture // 7 + 5, capture + 1_000_000 + np.arange(n)
    outs, at = [], 0
    for size in batches or [n]:
        outs.append(enc.add(frames[at:at + size], capture[at:at + size], device[at:at + size],
                            arrival[at:at + size]))
        at += size
    outs.append(enc.finish())
    return enc, outs, (capture, device, arrival)


def packets_of(outs) -> list[np.ndarray]:
    return [p for out in outs for p in out.packets]


@pytest.mark.parametrize(("codec", "pix_fmt", "size"), [
    ("h264", "yuv420p", (64, 48)), ("h264", "yuv420p", (320, 240)),
    ("h264", "yuv444p", (65, 49)), ("h264", "yuv444p", (320, 240)),
    ("av1", "yuv420p", (64, 48)), ("av1", "yuv420p", (320, 240)),
    ("av1", "yuv420p", (65, 49)),  # SVT-AV1 pads odd sizes itself
])
def test_round_trip_gives_the_frames_back(codec, pix_fmt, size):
    width, height = size
    frames = wrist_scene(12, width, height, noise=False)
    enc, outs, _ = encode(ImageEncoding(encoding=codec, pix_fmt=pix_fmt), frames)
    decoded = np.stack(decode_run(enc.stream_attrs(), packets_of(outs)))
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # 4:2:0 halves the chroma of a 64x48 photograph: high 20s; a wrong colour order or a
    # misplaced frame falls below 20
    assert psnr(decoded, frames) > 26


def test_odd_sized_420_h264_is_a_config_error_saying_what_to_change():
    with pytest.raises(ConfigError) as err:
        VideoEncoder(ImageEncoding(encoding="h264"), 65, 48, 30.0)
    message = str(err.value)
    assert "\n" not in message and "65x48" in message and "even" in message
    assert "resize" in message


@pytest.mark.parametrize("codec", CODECS)
def test_one_packet_per_frame_in_order_with_a_keyframe_every_gop(codec):
    frames = wrist_scene(24, 64, 48, noise=False)
    batches = [1, 0, 7, 3, 13]  # a group of pictures spans batches; an empty read is one too
    _, outs, _ = encode(ImageEncoding(encoding=codec, gop=5), frames, batches)
    assert [len(o) for o in outs] == [*batches, 0]  # each frame's packet at once, none held
    assert [o.first for o in outs[:-1]] == list(np.cumsum([0, *batches[:-1]]))
    keyframe = np.concatenate([o.keyframe for o in outs])
    np.testing.assert_array_equal(keyframe, np.arange(24) % 5 == 0)


@pytest.mark.parametrize("codec", CODECS)
def test_times_travel_with_their_frames(codec):
    frames = np.ascontiguousarray(wrist_scene(30, 160, 120, noise=False)[::3])  # 6 px apart
    enc, outs, (capture, device, arrival) = encode(ImageEncoding(encoding=codec), frames,
                                                   [3, 4, 3])
    np.testing.assert_array_equal(np.concatenate([o.capture_ns for o in outs]), capture)
    np.testing.assert_array_equal(np.concatenate([o.device_ns for o in outs]), device)
    np.testing.assert_array_equal(np.concatenate([o.arrival_ns for o in outs]), arrival)
    # and packet k is frame k: each decoded frame is nearest to its own raw frame
    decoded = decode_run(enc.stream_attrs(), packets_of(outs))
    nearest = [int(np.argmin([np.mean((d.astype(float) - f) ** 2) for f in frames]))
               for d in decoded]
    assert nearest == list(range(10))


@pytest.mark.parametrize("codec", CODECS)
def test_random_access_equals_sequential_decode_exactly(codec):
    frames = wrist_scene(15, 64, 48, noise=False)
    enc, outs, _ = encode(ImageEncoding(encoding=codec, gop=4), frames)
    packets = packets_of(outs)
    keyframe = np.concatenate([o.keyframe for o in outs])
    sequential = decode_run(enc.stream_attrs(), packets)
    for i in range(15):
        start = keyframe_before(keyframe, i)
        assert start == i - i % 4
        run = decode_run(enc.stream_attrs(), packets[start:i + 1])
        np.testing.assert_array_equal(run[-1], sequential[i])


def test_no_keyframe_before_a_frame_is_an_episode_file_error():
    with pytest.raises(EpisodeFileError, match="no keyframe"):
        keyframe_before(np.array([False, False, True]), 1)


@pytest.mark.parametrize("setting", [
    ["pipeline.images.encoding=h264", "pipeline.images.preset=bogus"],
    ["pipeline.images.encoding=av1", "pipeline.images.preset=14"],
    ["pipeline.images.encoding=h264", "pipeline.images.crf=52"],
    ["pipeline.images.encoding=av1", "pipeline.images.crf=64"],
    ["pipeline.images.encoding=av1", "pipeline.images.pix_fmt=yuv444p"],
])
def test_bad_video_settings_are_one_line_config_errors(setting):
    with pytest.raises(ConfigError) as err:
        load_station(SIM_CONFIG, setting)
    message = str(err.value)
    assert "\n" not in message and "pipeline.images" in message
    assert setting[1].split("=")[1] in message or "range" in message or "less" in message


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupted_packet_is_an_episode_file_error(codec, damage):
    """Damage the decoder can see. Neither bitstream checksums its payload, so a flipped bit
    deep in a small inter frame's entropy-coded data can decode unnoticed: the file's own
    checks (HDF5) are what catch that."""
    frames = wrist_scene(10, 160, 120, noise=False)
    enc, outs, _ = encode(ImageEncoding(encoding=codec), frames)
    packets = [p.copy() for p in packets_of(outs)]
    k = 0 if damage == "garbage" else 5
    if damage == "garbage":  # the keyframe overwritten by something else's bytes
        packets[k] = np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)
    elif damage == "truncated":
        packets[k] = packets[k][: len(packets[k]) // 3]
    else:
        packets[k] = packets[k][:0]
    with pytest.raises(EpisodeFileError, match=f"packet {k}( |$)|packet {k + 1} of"):
        decode_run(enc.stream_attrs(), packets)


def test_another_encoders_mp4_with_b_frames_decodes():
    """x264 with its defaults (B-frames, look-ahead) muxed into mp4 by PyAV, then demuxed: the
    packets are length-prefixed with the headers in the container's extradata, and frames come
    out later than their packets. VideoDecoder gives every frame, as FFmpeg's own demux does."""
    frames = wrist_scene(30, 160, 120, noise=False)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as video:
        demuxed = [p for p in video.demux(video.streams.video[0]) if p.size]
        extradata = video.streams.video[0].codec_context.extradata
        packets = [np.frombuffer(bytes(p), np.uint8) for p in demuxed]
        assert any(p.pts != p.dts for p in demuxed)  # B-frames: decode order is not display
    buffer.seek(0)
    with av.open(buffer) as video:
        expected = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    decoded = list(VideoDecoder({"codec": "h264", "extradata": extradata}).decode(packets))
    assert len(decoded) == len(expected) == 30
    # the same pictures in the same order, each nearest its own; Collector's YUV -> RGB
    # (bicubic chroma, exact rounding) differs from FFmpeg's default, not its fidelity
    for i, got in enumerate(decoded):
        assert np.argmax([psnr(got, other) for other in expected]) == i
    assert psnr(np.stack(decoded), frames) > psnr(np.stack(expected), frames) - 0.1


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("color_range", ["full", "limited"])
def test_decode_gives_back_the_colours_of_either_range(codec, color_range):
    """Blacks, whites, mid-greys and saturated colours come back as they went in: the stream's
    range is in its attributes (and a full-range stream's headers) and the decoder reads YUV
    with it (full read as limited stretches every level: 16 -> 0; limited read as full washes
    them out: 100 -> 102)."""
    levels = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                       [16, 16, 16], [235, 235, 235], [128, 64, 200]], np.uint8)
    frames = np.repeat(np.repeat(levels[:, None, None, :], 48, 1), 64, 2)  # flat 64x48 each
    spec = ImageEncoding(encoding=codec, crf=0, color_range=color_range)
    enc, outs, _ = encode(spec, frames)
    assert enc.stream_attrs()["color_range"] == color_range
    decoded = np.stack(decode_run(enc.stream_attrs(), packets_of(outs)))
    error = np.abs(decoded.astype(int) - frames).max(axis=(1, 2))
    assert error.max() <= (2 if color_range == "full" else 4), error


def test_decode_last_is_the_seeked_frame_alone():
    frames = wrist_scene(20, 160, 120, noise=False)
    enc, outs, _ = encode(ImageEncoding(encoding="h264", gop=8), frames)
    packets, keyframe = packets_of(outs), np.concatenate([o.keyframe for o in outs])
    everything = decode_run(enc.stream_attrs(), packets)
    for i in (0, 7, 8, 13, 19):
        start = keyframe_before(keyframe, i)
        np.testing.assert_array_equal(decode_last(enc.stream_attrs(), packets[start:i + 1]),
                                      everything[i])
    wanted = list(VideoDecoder(enc.stream_attrs()).decode(packets[8:16], wanted={1, 5}))
    assert len(wanted) == 2
    np.testing.assert_array_equal(wanted[1], everything[13])


def _swscale(frame: np.ndarray, pix_fmt: str,
             color_range: ColorRange = ColorRange.JPEG) -> av.VideoFrame:
    """The encoder's input as swscale makes it (its exact rounding and averaged chroma)."""
    return av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
        format=pix_fmt, src_color_range=ColorRange.JPEG, dst_color_range=color_range,
        interpolation=TO_YUV, threads=1)


def _to_rgb(picture: av.VideoFrame) -> np.ndarray:
    return picture.to_ndarray(format="rgb24", src_color_range=ColorRange.JPEG,
                              dst_color_range=ColorRange.JPEG, interpolation=TO_RGB, threads=1)


def _planes(picture: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width].copy()
            for p in picture.planes]


# JPEG's YCbCr (BT.601, full range): what a full-range picture's levels are by definition
YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5],
                  [0.5, -0.418687589, -0.081312411]])


def _exact_planes(frame: np.ndarray, pix_fmt: str) -> list[np.ndarray]:
    """Y, Cb, Cr in float, each 4:2:0 chroma sample the mean of its 2x2 pixels."""
    ycc = frame.astype(np.float64) @ YCBCR.T + [0, 128, 128]
    if pix_fmt == "yuv420p":
        h, w = frame.shape[:2]
        chroma = ycc[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
        return [ycc[..., 0], chroma[..., 0], chroma[..., 1]]
    return [ycc[..., 0], ycc[..., 1], ycc[..., 2]]


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
@pytest.mark.parametrize("size", [(640, 480), (66, 50), (2, 2)])
def test_full_range_pictures_hold_the_exact_sums(pix_fmt, size):
    """OpenCV's conversion (the encoder's fast path) on a photograph: every level within 1.5 of
    the exact sums (rounding, and chroma averaged after it), and the round trip as close to the
    frame as swscale's (which is 3-9 levels off at 2x2, where its filter reaches past the
    edge)."""
    from skimage import data

    width, height = size
    photo = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    fast = yuv_picture(photo, pix_fmt, ColorRange.JPEG)
    assert (fast.format.name, fast.width, fast.height) == (pix_fmt, width, height)
    for got, want in zip(_planes(fast), _exact_planes(photo, pix_fmt), strict=True):
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1.5
    # back to RGB as the decoder converts: a swapped Cb/Cr or a misplaced plane loses >10 dB
    assert psnr(_to_rgb(fast), photo) >= psnr(_to_rgb(_swscale(photo, pix_fmt)), photo) - 0.3


@pytest.mark.parametrize(("pix_fmt", "color_range", "size"), [
    ("yuv420p", ColorRange.MPEG, (64, 48)), ("yuv420p", ColorRange.JPEG, (65, 49))])
def test_limited_range_and_odd_420_pictures_are_swscales_own(pix_fmt, color_range, size):
    from skimage import data

    width, height = size
    photo = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    want = _swscale(photo, pix_fmt, color_range)
    got = yuv_picture(photo, pix_fmt, color_range)
    for a, b in zip(_planes(got), _planes(want), strict=True):
        np.testing.assert_array_equal(a, b)
