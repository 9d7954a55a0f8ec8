"""JPEG encoding of camera batches: the pipeline's `encode_frames` beside honest alternatives.

- baseline: the naive path a user might write first: `cv2.imencode` per frame with the
  default quality (95) after a per-frame RGB->BGR copy through numpy fancy indexing;
- fast: `core.codec.encode_frames` at the station's quality (90);
- fast, lower quality (80): the cost curve users tune with `pipeline.images.quality`.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from benchmarks.conftest import role
from core.codec import encode_frames
from drivers.sim.camera import SimCamera
from drivers.sim.world import SimWorld
from schemas.devices import SimCameraConfig
from schemas.station import ImageEncoding


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """A chunk of the simulated cameras' 640x480 frames (100 ms at 30 fps, three cameras)."""
    world = SimWorld()
    cams = [SimCamera(SimCameraConfig(name=f"c{i}", type="sim_camera", width=640, height=480,
                                      fps=30), world, view=i) for i in range(3)]
    return np.stack([cams[i % 3].render(i) for i in range(9)])


def naive_encode(frames: np.ndarray) -> list[np.ndarray]:
    out = []
    for frame in frames:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[:, :, ::-1]))
        assert ok
        out.append(buf)
    return out


def test_encode_naive(benchmark, frames):
    role(benchmark, "jpeg_encode", "baseline")
    out = benchmark(naive_encode, frames)
    assert len(out) == len(frames)


@pytest.mark.parametrize("quality", [90, 80])
def test_encode_frames(benchmark, frames, quality):
    role(benchmark, "jpeg_encode", "fast")
    benchmark.extra_info["quality"] = quality
    out = benchmark(encode_frames, frames, ImageEncoding(encoding="jpeg", quality=quality))
    assert len(out) == len(frames)
    decoded = cv2.imdecode(out[0], cv2.IMREAD_COLOR)
    assert decoded.shape == frames[0].shape
