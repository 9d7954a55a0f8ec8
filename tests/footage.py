"""Real footage for the camera checks: real photographs (scikit-image's) panned and zoomed into a
video file, with faults injected at seeded random frames, recorded through the real OpenCV
driver, and the stored flags scored against what was injected.

Every frame carries a burned-in timestamp and a sharp marker drawn after any fault, as a real
camera's overlay would be: a small sharp region that must not hide a defocused scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np

from collector.config import validate_station
from collector.storage.reader import open_episode
from tests.conftest import record_config

WIDTH, HEIGHT, FPS = 320, 240, 30.0
FAULTS = ("blurred", "overexposed", "underexposed", "frozen")
RATES = {"blurred": 0.08, "overexposed": 0.05, "underexposed": 0.05, "frozen": 0.05}


def photograph(name: str) -> np.ndarray:
    """A real photograph shipped with scikit-image, as BGR uint8."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def view(image: np.ndarray, t: float, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """The photograph as a camera panning and zooming over it sees it at phase t in [0, 1),
    `size` (width, height): a crop, so no frame is softened by upscaling when the photograph
    is larger than the frame."""
    width, height = size
    ph, pw = image.shape[:2]
    zoom = 0.9 + 0.1 * np.sin(2 * np.pi * 1.3 * t)
    ch = int(min(ph, pw * height / width) * zoom)
    cw = int(ch * width / height)
    x = int((pw - cw) * (0.5 + 0.5 * np.sin(2 * np.pi * t)))
    y = int((ph - ch) * (0.5 + 0.5 * np.cos(2 * np.pi * 0.7 * t)))
    return cv2.resize(image[y:y + ch, x:x + cw], size, interpolation=cv2.INTER_AREA)


def overlay(frame: np.ndarray, index: int) -> None:
    """A burned-in timestamp and a sharp checker marker in a corner."""
    cv2.putText(frame, f"2025-01-01 12:{index // 1800:02d}:{index / 30 % 60:06.3f}", (4, 14),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cell = np.kron(np.indices((4, 4)).sum(axis=0) % 2, np.ones((4, 4), int)) * 255
    frame[-20:-4, -20:-4] = cell[..., None].astype(np.uint8)


def spoil(frame: np.ndarray, fault: str, rng: np.random.Generator) -> np.ndarray:
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    if fault == "blurred":  # a lens that lost focus: Gaussian, sigma several pixels
        return cv2.GaussianBlur(frame, (0, 0), rng.uniform(3.0, 5.0))
    if fault == "overexposed":  # brightened until 70% of the scene is at 220 or more
        p30 = max(float(np.percentile(gray, 30)), 1.0)
        if rng.random() < 0.5:  # gain: the bright part clips
            alpha = 220 / p30 * rng.uniform(1.0, 1.2)
            out = cv2.convertScaleAbs(frame, alpha=alpha)
            while np.percentile(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), 30) < 220:
                alpha *= 1.1  # a saturated color channel held the luminance back
                out = cv2.convertScaleAbs(frame, alpha=alpha)
            return out
        k = 35 / max(255 - p30, 1.0) * rng.uniform(0.6, 1.0)  # lifted toward white, washed out
        return (255 - (255 - frame.astype(np.float32)) * k).astype(np.uint8)
    if fault == "underexposed":
        return cv2.convertScaleAbs(frame, alpha=rng.uniform(0.04, 0.15))
    raise ValueError(fault)


def sensor_noise(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real sensor's noise (after the optics: a defocused frame is noisy too). Without it two
    frames of a slow pan can be identical, which no check could tell from a frozen camera."""
    noise = rng.normal(0.0, 2.0, frame.shape).astype(np.float32)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def make_clip(path: Path, photo: str, frames: int, seed: int, fps: float = FPS,
              rates: dict[str, float] | None = None,
              size: tuple[int, int] = (WIDTH, HEIGHT)) -> dict[str, np.ndarray]:
    """Write the clip (MJPG .avi); return per frame index which fault it shows.

    Faults exclude each other and a frozen frame (an exact copy of the frame written before
    it) follows a clean one, so each frame shows at most one fault."""
    rng = np.random.default_rng(seed)
    draw = rng.random(frames)
    truth, edge = {}, 0.0
    for name in FAULTS:
        rate = (rates or RATES)[name]
        truth[name] = (draw >= edge) & (draw < edge + rate)
        edge += rate
    truth["frozen"][0] = False
    clean = ~np.any([truth[n] for n in FAULTS], axis=0)
    truth["frozen"][1:] &= clean[:-1]
    clean = ~np.any([truth[n] for n in FAULTS], axis=0)
    image = photograph(photo)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert out.isOpened()
    last = None
    for i in range(frames):
        if truth["frozen"][i]:
            frame = last
        else:
            frame = view(image, i / 300, size)
            for name in ("blurred", "overexposed", "underexposed"):
                if truth[name][i]:
                    frame = spoil(frame, name, rng)
            frame = sensor_noise(frame, rng)
            overlay(frame, i)
        out.write(frame)
        last = frame
    out.release()
    truth["clean"] = clean
    return truth


def record_clip(tmp_path: Path, video: Path, duration_s: float, fps: float = FPS,
                camera: dict | None = None, images: dict | None = None) -> str:
    """One episode of the clip through the real `opencv_camera` driver (inline engine);
    `camera`: more keys of its device entry, `images`: the `pipeline.images` section."""
    config = validate_station({
        "station": {"id": "footage", "output_dir": str(tmp_path / "out")},
        "engine": {"kind": "inline"},
        "episode": {"control_hz": fps, "duration_s": duration_s, "reset_s": 0},
        "devices": [{"name": "cam", "type": "opencv_camera", "source": str(video),
                     "width": WIDTH, "height": HEIGHT, "fps": fps, **(camera or {})}],
        **({"pipeline": {"images": images}} if images else {}),
    }, source="test")
    return record_config(config).path


@dataclass
class Figures:
    shown: int  # ticks showing the fault
    found: int  # of those, flagged
    others: int  # delivered ticks not showing it
    false: int  # of those, flagged

    @property
    def recall(self) -> float:
        return self.found / self.shown if self.shown else float("nan")

    @property
    def false_rate(self) -> float:
        return self.false / self.others if self.others else float("nan")


def score(path: str, truth: dict[str, np.ndarray]) -> dict[str, Figures]:
    """Per check: of the delivered ticks showing its fault, how many it flagged; of the others,
    how many it flagged all the same. Read back with plain h5py."""
    with h5py.File(path, "r") as f:
        q = {k: v[:] for k, v in f["quality/cam"].items()}
    with open_episode(path) as ep:  # a video camera's frame times are its video's, not /raw's
        raw = ep.raw("cam")
        raw_capture, raw_seq = raw["capture_ns"], raw["seq"]
    delivered = ~q["missing"]
    at = np.searchsorted(raw_capture, q["capture_ns"]).clip(0, len(raw_seq) - 1)
    assert (raw_capture[at] == q["capture_ns"])[delivered].all()
    frame = raw_seq[at]
    assert frame[delivered].max() < len(truth["clean"]), "the clip ran out: make it longer"
    out = {}
    for name in FAULTS:
        shows = truth[name][frame] & delivered
        others = ~truth[name][frame] & delivered
        flagged = q[name].astype(bool)
        out[name] = Figures(int(shows.sum()), int((flagged & shows).sum()),
                            int(others.sum()), int((flagged & others).sum()))
    return out
