"""MJPG passthrough (opencv_camera `passthrough: jpeg`): a camera that delivers JPEG, stored as
JPEG, keeps its own bytes, and its pixel checks run on a reduced decode of them.

The camera is the real `opencv_camera` driver reading an MJPG .avi of real photographs, panned
and zoomed, with seeded faults (tests/footage.py); the episode is recorded by the station
(inline engine) and read back with plain h5py; the file's own packets, read with PyAV, are what
the camera delivered.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from collector.config import validate_station
from collector.errors import ConfigError
from collector.quality import frame_scores, jpeg_small_gray, small_gray, tile_sharpness
from collector.rig import build_rig
from core.codec import IMAGE_FIELD, JPEG_FIELD, decode_frame
from core.errors import DeviceError
from drivers.opencv_camera import OpenCVCamera
from schemas.devices import OpenCVCameraConfig
from schemas.station import CameraChecks
from tests.footage import FAULTS, FPS, HEIGHT, WIDTH, make_clip, record_clip, score

DURATION_S = 10.0
CLIP_FRAMES = int(FPS * (DURATION_S + 8))  # the driver plays the file from when it opens
PASSTHROUGH = {"passthrough": "jpeg"}
JPEG = {"encoding": "jpeg"}


def packets(video: Path) -> list[bytes]:
    """The video's frames as its file holds them (PyAV's demuxer, not OpenCV)."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mjpeg"
        return [bytes(p) for p in container.demux(stream) if p.size]


def stored_frames(path: str) -> tuple[list[bytes], np.ndarray, dict]:
    """Each tick's stored bytes, the file frame it shows (-1: none), the image attributes."""
    with h5py.File(path, "r") as f:
        images = f["observations/images/cam"]
        data = [bytes(b) for b in images[:]]
        attrs = {k: v.item() if hasattr(v, "item") else v for k, v in images.attrs.items()}
        capture = f["quality/cam/capture_ns"][:]
        missing = f["quality/cam/missing"][:]
        raw_capture, raw_seq = f["raw/cam/capture_ns"][:], f["raw/cam/seq"][:]
    at = np.searchsorted(raw_capture, capture).clip(0, len(raw_seq) - 1)
    shown = np.where(missing, -1, raw_seq[at])
    return data, shown, attrs


@pytest.mark.parametrize(("photo", "seed"), [
    ("astronaut", 21), pytest.param("chelsea", 22, marks=pytest.mark.slow)])
@pytest.mark.slow
def test_the_episode_holds_the_cameras_own_jpeg_and_its_checks_still_hold(tmp_path, photo,
                                                                          seed):
    pytest.importorskip("skimage")
    pytest.importorskip("av")
    video = tmp_path / f"{photo}.avi"
    truth = make_clip(video, photo, CLIP_FRAMES, seed)
    path = record_clip(tmp_path, video, DURATION_S, camera=PASSTHROUGH, images=JPEG)

    data, shown, attrs = stored_frames(path)
    delivered = shown >= 0
    # how many ticks get a frame depends on how busy the machine is (the driver plays the
    # file in real time); what is checked below is what every delivered tick holds
    assert delivered.sum() >= FPS, f"{delivered.sum()} of {len(shown)} ticks delivered"
    file_frames = packets(video)
    assert shown.max() < len(file_frames)
    # byte for byte what the camera (the file) delivered, at every delivered tick
    same = [data[t] == file_frames[shown[t]] for t in np.flatnonzero(delivered)]
    assert all(same), f"{same.count(False)} of {len(same)} ticks differ from the camera's frame"
    assert (attrs["encoding"], attrs["width"], attrs["height"]) == ("jpeg", WIDTH, HEIGHT)
    assert attrs["jpeg_source"] == "camera" and attrs["quality"] == 0  # not ours to state
    assert decode_frame(np.frombuffer(data[0], np.uint8), "jpeg").shape == (HEIGHT, WIDTH, 3)

    # the pixel checks ran on the reduced decode, with the thresholds of the full one
    figures = score(path, truth)
    print(f"\n{photo} seed {seed} passthrough: " + ", ".join(
        f"{n} {f.found}/{f.shown} found, {f.false}/{f.others} false" for n, f in figures.items()))
    for name in FAULTS:
        f = figures[name]
        assert f.shown >= 5, (name, f)
        assert f.recall >= 0.95, (name, f)
        assert f.false_rate <= 0.02, (name, f)


@pytest.mark.parametrize("downscale", [2, 4, 8, 3])
def test_the_reduced_decode_scores_as_the_decoded_frame_shrunk(tmp_path, downscale):
    """What the checks see of a camera's JPEG decoded at 1/2, 1/4, 1/8 by libjpeg (then area
    shrunk the rest of the way) has the size, the brightness and the sharpness of the full
    decode shrunk by `small_gray`: the Laplacian is measured at the same scale, so the blur,
    exposure and frozen thresholds mean what they meant."""
    pytest.importorskip("skimage")
    video = tmp_path / "clip.avi"
    make_clip(video, "coffee", 150, 31)
    frames = [np.frombuffer(p, np.uint8) for p in packets_cv2(video)]
    checks = CameraChecks(downscale=downscale)
    full = small_gray(np.stack([cv2.cvtColor(cv2.imdecode(f, cv2.IMREAD_COLOR),
                                             cv2.COLOR_BGR2RGB) for f in frames]), downscale)
    reduced = np.stack([jpeg_small_gray(f, downscale, HEIGHT, WIDTH) for f in frames])
    assert reduced.shape == full.shape
    brightness = np.abs(full.mean(axis=(1, 2)) - reduced.mean(axis=(1, 2)))
    assert brightness.max() < 1.0, brightness.max()  # gray levels
    ratio = tile_sharpness(reduced) / tile_sharpness(full)
    assert 0.95 <= np.median(ratio) <= 1.05, np.median(ratio)
    has = np.arange(len(frames)) > 0
    a = frame_scores(full, np.roll(full, 1, axis=0), has, checks)
    b = frame_scores(reduced, np.roll(reduced, 1, axis=0), has, checks)
    for check in FAULTS:
        agree = (a[check] == b[check]).mean()
        assert agree >= 0.99, (check, agree)


def packets_cv2(video: Path) -> list[bytes]:
    """The frames as the driver's OpenCV raw mode reads them."""
    cap = cv2.VideoCapture(str(video))
    assert cap.set(cv2.CAP_PROP_FORMAT, -1)
    out = []
    while True:
        ok, data = cap.read()
        if not ok:
            break
        out.append(data.reshape(-1).tobytes())
    cap.release()
    return out


def station(tmp_path: Path, video: Path, camera: dict, images: dict) -> dict:
    return {
        "station": {"id": "mjpg", "output_dir": str(tmp_path / "out")},
        "engine": {"kind": "inline"},
        "episode": {"control_hz": FPS, "duration_s": 1.0, "reset_s": 0},
        "devices": [{"name": "cam", "type": "opencv_camera", "source": str(video),
                     "width": WIDTH, "height": HEIGHT, "fps": FPS, **camera}],
        "pipeline": {"images": images},
    }


@pytest.mark.parametrize(("camera", "images", "keeps"), [
    (PASSTHROUGH, JPEG, True),
    (PASSTHROUGH, {"encoding": "h264"}, False),
    (PASSTHROUGH, {"encoding": "png"}, False),
    (PASSTHROUGH, {"encoding": "jpeg", "resize": [160, 120]}, False),
    (PASSTHROUGH, {"encoding": "jpeg", "cameras": {"cam": {"encoding": "av1"}}}, False),
    ({**PASSTHROUGH, "rotation": 180}, JPEG, False),
    ({}, JPEG, False),  # not asked for: nothing changes for an existing config
])
def test_passthrough_applies_only_where_the_frames_are_stored_as_the_camera_made_them(
        tmp_path, camera, images, keeps):
    """The driver the station builds hands out JPEG bytes only for a camera stored as JPEG at
    its own size and unrotated; otherwise pixels, decoded as before."""
    video = tmp_path / "clip.avi"
    write_mjpg(video, 3)
    config = validate_station(station(tmp_path, video, camera, images), source="test")
    [device] = build_rig(config).devices
    fields = device.describe().fields
    assert (JPEG_FIELD in fields, IMAGE_FIELD in fields) == (keeps, not keeps)
    assert device.describe().frame_shape == (HEIGHT, WIDTH, 3)


def write_mjpg(path: Path, frames: int, size: tuple[int, int] = (WIDTH, HEIGHT),
               fourcc: str = "MJPG") -> None:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, size)
    assert out.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(frames):
        out.write(rng.integers(0, 255, (size[1], size[0], 3), np.uint8))
    out.release()


def passthrough_camera(video: Path, **keys) -> OpenCVCamera:
    config = OpenCVCameraConfig(name="cam", type="opencv_camera", source=str(video),
                                width=WIDTH, height=HEIGHT, fps=FPS, passthrough="jpeg", **keys)
    return OpenCVCamera(config, stores_jpeg=True)


def test_a_camera_that_does_not_deliver_jpeg_is_named_at_open(tmp_path):
    video = tmp_path / "clip.avi"
    write_mjpg(video, 3, fourcc="XVID")
    with pytest.raises(DeviceError, match=r"^cam: passthrough: jpeg, but the camera does not "
                                          r"deliver JPEG \(MJPG\); give it fourcc MJPG"):
        passthrough_camera(video).open()


def test_a_camera_that_delivers_another_size_is_named_at_open(tmp_path):
    video = tmp_path / "clip.avi"
    write_mjpg(video, 3, size=(WIDTH * 2, HEIGHT * 2))
    with pytest.raises(DeviceError, match=rf"^cam: delivers {WIDTH * 2}x{HEIGHT * 2} JPEG, not "
                                          rf"the configured {WIDTH}x{HEIGHT}; set width and "
                                          "height"):
        passthrough_camera(video).open()


def test_passthrough_with_another_fourcc_is_a_config_error(tmp_path):
    raw = station(tmp_path, tmp_path / "clip.avi", {**PASSTHROUGH, "fourcc": "YUYV"}, JPEG)
    with pytest.raises(ConfigError, match="passthrough: jpeg keeps the camera's JPEG bytes, "
                                          "but fourcc YUYV asks it for another format"):
        validate_station(raw, source="test")


def remux(source: Path, target: Path, damaged: set[int]) -> list[bytes]:
    """The source's MJPG frames into a new .avi, those in `damaged` cut after their headers
    (a transfer the camera lost the middle of: a JPEG that does not decode); PyAV's muxer."""
    from fractions import Fraction

    import av

    frames = packets(source)
    out = [f[:200] + b"\xff\xd9" if i in damaged else f for i, f in enumerate(frames)]
    with av.open(str(target), "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
        stream.time_base = Fraction(1, int(FPS))
        for i, data in enumerate(out):
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts = stream, i, i
            packet.time_base = stream.time_base
            container.mux(packet)
    return out


@pytest.mark.slow
def test_a_frame_that_does_not_decode_is_stored_as_it_came_and_flagged_checksum(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("av")
    clean = tmp_path / "clean.avi"
    rates = {"blurred": 0.0, "overexposed": 0.0, "underexposed": 0.0, "frozen": 0.0}
    make_clip(clean, "coffee", int(FPS * 12), 51, rates=rates)
    video = tmp_path / "damaged.avi"
    file_frames = remux(clean, video, damaged=set(range(5, int(FPS * 12), 10)))
    assert cv2.imdecode(np.frombuffer(file_frames[5], np.uint8), cv2.IMREAD_COLOR) is None
    path = record_clip(tmp_path, video, 4.0, camera=PASSTHROUGH, images=JPEG)

    data, shown, _ = stored_frames(path)
    with h5py.File(path, "r") as f:
        q = {k: v[:] for k, v in f["quality/cam"].items()}
    delivered = shown >= 0
    bad = delivered & (shown % 10 == 5)
    assert bad.sum() >= 5 and (delivered & ~bad).sum() >= 50
    assert all(data[t] == file_frames[shown[t]] for t in np.flatnonzero(delivered))
    assert q["checksum"][bad].all() and not q["checksum"][delivered & ~bad].any()
    for check in FAULTS:  # a damaged frame shows no fault of the scene; the clean ones neither
        assert not q[check][delivered].any(), check
