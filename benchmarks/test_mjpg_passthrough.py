"""MJPG passthrough against decode + re-encode: the CPU one 640x480 camera frame costs from
the camera's JPEG to the bytes the episode stores, on the same frames in the same run.

The frames: an MJPG .avi (cv2.VideoWriter) of real photographs (scikit-image's), panned and
zoomed with sensor noise and a burned-in overlay (tests/footage.py), read by the real
`opencv_camera` driver's two ways:

- baseline (`passthrough` off, today's path): the driver reads and decodes each frame
  (OpenCV's FFmpeg backend) and converts it to RGB (`OpenCVCamera.convert`); computation runs
  the pixel checks (`small_gray`, `frame_scores`) and encodes it as JPEG q90 (`encode_frames`);
- fast (`passthrough: jpeg`): the driver reads the frame's bytes (raw mode) and copies them
  into a ring slot (`_keep_jpeg`); computation runs the checks on a 1/4-scale luma decode
  (`jpeg_small_gray`) and copies the bytes out to store them.

CPU time of this process (all its threads; one OpenCV thread, as the station runs), best of
interleaved rounds. Results in benchmarks/results/mjpg_passthrough.json.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.conftest import role
from benchmarks.test_sync import write_result
from collector.quality import frame_scores, jpeg_small_gray, small_gray
from core.codec import JPEG_FIELD, encode_frames
from drivers.opencv_camera import OpenCVCamera
from schemas.devices import OpenCVCameraConfig
from schemas.station import CameraChecks, ImageEncoding

WIDTH, HEIGHT, FRAMES = 640, 480, 60
CHECKS = CameraChecks()
SPEC = ImageEncoding(encoding="jpeg", quality=90)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    pytest.importorskip("skimage")
    from tests.footage import make_clip

    path = tmp_path_factory.mktemp("mjpg") / "clip.avi"
    make_clip(path, "astronaut", FRAMES, 41, size=(WIDTH, HEIGHT))  # a USB camera's usual size
    return path


def camera(clip: Path, passthrough: bool) -> OpenCVCamera:
    config = OpenCVCameraConfig(name="cam", type="opencv_camera", source=str(clip), width=WIDTH,
                                height=HEIGHT, fps=1000,
                                passthrough="jpeg" if passthrough else None)
    return OpenCVCamera(config, stores_jpeg=True)


def capture_all(cam: OpenCVCamera) -> list[np.ndarray]:
    """Every frame of the clip as the driver hands it out (its `_capture`, in this thread)."""
    cam._connect()
    out = []
    try:
        for _ in range(FRAMES):
            block = cam._capture()
            assert block is not None
            if JPEG_FIELD in block.values:
                size = int(block.values["jpeg_size"][0, 0])
                out.append(block.values[JPEG_FIELD][0, :size])
            else:
                out.append(block.values["image"][0])
    finally:
        cam._disconnect()
    return out


def compute(frames: list[np.ndarray], passthrough: bool) -> list[np.ndarray]:
    """Checks (each frame beside the one before) and the bytes to store."""
    if passthrough:
        gray = np.stack([jpeg_small_gray(f, CHECKS.downscale, HEIGHT, WIDTH) for f in frames])
        stored = [np.array(f) for f in frames]
    else:
        gray = small_gray(np.stack(frames), CHECKS.downscale)
        stored = list(encode_frames(frames, SPEC))
    has = np.arange(len(gray)) > 0
    frame_scores(gray, np.roll(gray, 1, axis=0), has, CHECKS)
    return stored


def path_cpu(clip: Path, passthrough: bool) -> tuple[float, float]:
    """CPU seconds of the driver's part and of computation's part, for the whole clip."""
    cam = camera(clip, passthrough)
    started = time.process_time()
    frames = capture_all(cam)
    captured = time.process_time()
    compute(frames, passthrough)
    return captured - started, time.process_time() - captured


def test_mjpg_passthrough_vs_decode_and_reencode(benchmark, clip):
    cv2.setNumThreads(1)  # as every station process runs (collector/tuning.py)
    if benchmark.disabled:  # smoke run: both paths once, no timings
        path_cpu(clip, False)
        path_cpu(clip, True)
        return
    best = {False: [float("inf")] * 2, True: [float("inf")] * 2}
    for _ in range(7):  # interleaved: the machine's load weighs on both alike
        for passthrough in (False, True):
            parts = path_cpu(clip, passthrough)
            best[passthrough] = [min(a, b) for a, b in zip(best[passthrough], parts,
                                                            strict=True)]
    base, fast = (sum(best[p]) / FRAMES * 1e3 for p in (False, True))
    role(benchmark, "mjpg_passthrough", "fast")
    benchmark.pedantic(path_cpu, args=(clip, True), rounds=3, iterations=1)
    benchmark.extra_info.update({"cpu_ms_per_frame": round(fast, 3),
                                 "baseline_cpu_ms_per_frame": round(base, 3)})
    write_result("mjpg_passthrough", {
        "frames": f"{FRAMES} x {WIDTH}x{HEIGHT} MJPG .avi (cv2.VideoWriter) of skimage's "
                  "astronaut, panned and zoomed, sensor noise, through opencv_camera",
        "jpeg_bytes_per_frame": round(clip.stat().st_size / FRAMES),
        "cpu": "process CPU time, best of 7 interleaved rounds, one OpenCV thread",
        "decode_reencode_ms_per_frame": {"driver": round(best[False][0] / FRAMES * 1e3, 3),
                                         "computation": round(best[False][1] / FRAMES * 1e3, 3),
                                         "total": round(base, 3)},
        "passthrough_ms_per_frame": {"driver": round(best[True][0] / FRAMES * 1e3, 3),
                                     "computation": round(best[True][1] / FRAMES * 1e3, 3),
                                     "total": round(fast, 3)},
        "saved_ms_per_frame": round(base - fast, 3),
        "passthrough_over_baseline": round(fast / base, 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    })
    assert fast < 0.5 * base, f"passthrough {fast:.2f} ms vs {base:.2f} ms a frame"
