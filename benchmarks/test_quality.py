"""Quality checks against JPEG encoding, per 640x480 frame, on the same simulated frames.

Both run batched the way the pipeline runs them (a chunk of 30 frames): the checks as perception
does (`camera_scores`), the encoding as computation does (`encode_frames`, JPEG quality 90).
Target: the checks cost at most 25% of the encoding. Results in benchmarks/results/quality.json.
"""

from __future__ import annotations

import numpy as np

from benchmarks.test_sync import best_of, write_result
from collector.quality import camera_scores
from core.codec import encode_frames
from drivers.sim.camera import SimCamera
from drivers.sim.world import SimWorld
from schemas.devices import Faults, SimCameraConfig
from schemas.station import CameraChecks, ImageEncoding

BATCH = 30


def sim_frames(n: int = BATCH, width: int = 640, height: int = 480) -> np.ndarray:
    """Frames of the simulated scene with its usual faults, as the pipeline receives them."""
    faults = Faults(frozen_rate=0.05, blur_rate=0.05, overexposed_rate=0.05, seed=1)
    camera = SimCamera(SimCameraConfig(name="cam", type="sim_camera", width=width,
                                       height=height, faults=faults), SimWorld(), realtime=False)
    frames = []
    while len(frames) < n:
        block = camera._capture()
        if block is not None:
            frames.append(block.values["image"][0])
    return np.stack(frames)


def check_frames(frames: np.ndarray, previous: np.ndarray | None = None):
    return camera_scores(frames, previous, CameraChecks())


def jpeg_frames(frames: np.ndarray):
    return encode_frames(frames, ImageEncoding(encoding="jpeg", quality=90))


def test_quality_checks_vs_jpeg_encoding(benchmark):
    frames = sim_frames()
    if benchmark.disabled:  # smoke run: both paths once, no timings
        check_frames(frames)
        jpeg_frames(frames)
        return
    # interleaved, best of many: a shared machine's load then weighs on both alike
    checks_s = jpeg_s = float("inf")
    for _ in range(20):
        jpeg_s = min(jpeg_s, best_of(jpeg_frames, frames, rounds=1))
        checks_s = min(checks_s, best_of(check_frames, frames, rounds=1))
    benchmark.pedantic(check_frames, args=(frames,), rounds=15, iterations=1)
    ratio = checks_s / jpeg_s
    write_result("quality", {
        "frames": f"{BATCH} x 640x480 RGB, simulated scene",
        "checks_ms_per_frame": round(checks_s / BATCH * 1e3, 4),
        "jpeg_q90_ms_per_frame": round(jpeg_s / BATCH * 1e3, 4),
        "checks_over_jpeg": round(ratio, 3),
    })
    assert ratio <= 0.25, f"quality checks cost {ratio:.0%} of JPEG encoding"
