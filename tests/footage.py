"""Real footage for the camera checks: real photographs (scikit-image's) panned and zoomed into a
video file, with faults injected at seeded random frames, recorded through the real OpenCV
driver, and the stored flags scored against what was injected.

Every frame carries a burned-in timestamp and a sharp marker drawn after any fault, as a real
camera's overlay would be: a small sharp region that must not hide a defocused scene.

Dropped frames (`drop_rate`) are left out of the file with their presentation times kept: the
frames after them play as late as a real camera's frame after a drop arrives, and the driver
numbers each frame by its time, so its number is the frame's index in the clip.
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
DROPPED = "dropped"
DROP_RATE = 0.05
# A dropped frame due this close to halfway between two ticks may be either tick's: which one
# its neighbours' capture times put it on is rounding, not a finding.
HALFWAY_NS = 2_000_000


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
              size: tuple[int, int] = (WIDTH, HEIGHT),
              drop_rate: float = 0.0) -> dict[str, np.ndarray]:
    """Write the clip (MJPG .avi); return per frame index which fault it shows, and with
    `drop_rate` which frames were left out of the file (`dropped`).

    Faults exclude each other, a dropped frame shows none, and a frozen frame (an exact copy of
    the frame written before it) follows a clean one, so each frame shows at most one fault."""
    rng = np.random.default_rng(seed)
    draw = rng.random(frames)
    truth, edge = {}, 0.0
    for name, rate in [(n, (rates or RATES)[n]) for n in FAULTS] + [(DROPPED, drop_rate)]:
        truth[name] = (draw >= edge) & (draw < edge + rate)
        edge += rate
    truth["frozen"][0] = truth[DROPPED][0] = False  # the first frame's time is the clip's origin
    clean = ~np.any([truth[n] for n in (*FAULTS, DROPPED)], axis=0)
    truth["frozen"][1:] &= clean[:-1]
    clean = ~np.any([truth[n] for n in (*FAULTS, DROPPED)], axis=0)
    image = photograph(photo)
    written = path.with_suffix(".all.avi") if drop_rate else path
    out = cv2.VideoWriter(str(written), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
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
    if drop_rate:
        leave_out(written, path, truth[DROPPED], fps)
        written.unlink()
    else:
        del truth[DROPPED]
    truth["clean"] = clean
    return truth


def leave_out(source: Path, target: Path, dropped: np.ndarray, fps: float) -> None:
    """The source's MJPG frames into `target` (.avi, PyAV's muxer) but for the dropped ones,
    each at its own presentation time (its index at `fps`): the JPEG bytes are OpenCV's, as
    in a clip without drops, and the frames left out leave their gaps in time."""
    from fractions import Fraction

    import av

    with av.open(str(source)) as container:
        frames = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    assert len(frames) == len(dropped)
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(target), "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=rate)
        stream.width, stream.height = cv2.imdecode(np.frombuffer(frames[0], np.uint8),
                                                   cv2.IMREAD_COLOR).shape[1::-1]
        stream.pix_fmt = "yuvj420p"
        stream.time_base = 1 / rate
        for i in np.flatnonzero(~dropped):
            packet = av.Packet(frames[i])
            packet.stream, packet.pts, packet.dts = stream, int(i), int(i)
            packet.time_base = stream.time_base
            container.mux(packet)


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
    how many it flagged all the same. With dropped frames in the clip, `dropped` too (see
    `score_drops`). Read back with plain h5py.

    A tick shows the frame whose capture time it stored; that frame's number (the driver's,
    from its presentation time) is its index in the clip."""
    with h5py.File(path, "r") as f:
        q = {k: v[:] for k, v in f["quality/cam"].items()}
        ticks = f["timestamps"][:]
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
    if DROPPED in truth:
        # a frame left out of the file can never have been delivered: if one were, the
        # driver's numbers would not be the clip's indices and every figure here would be off
        assert not truth[DROPPED][raw_seq].any(), "a frame left out was numbered as delivered"
        out[DROPPED] = score_drops(q[DROPPED].astype(bool), ticks, raw_capture, raw_seq,
                                   truth[DROPPED])
    return out


def score_drops(flagged: np.ndarray, ticks: np.ndarray, capture: np.ndarray, seq: np.ndarray,
                dropped: np.ndarray) -> Figures:
    """Of the frames left out of the clip, how many the tick that should have shown them flags
    `dropped`; of the other ticks, how many are flagged all the same.

    A left-out frame would have been captured where its index puts it between the frames the
    episode did get (their capture times); the tick nearest that time should have shown it
    (either of two, within HALFWAY_NS of halfway between them). Only frames with delivered
    frames on both sides are counted, and only the ticks between the episode's first and last
    frames: at an edge the episode holds no frame to see the gap from."""
    period = int(np.median(np.diff(ticks)))
    lost = np.flatnonzero(dropped)
    lost = lost[(lost > seq.min()) & (lost < seq.max())]
    due = (np.interp(lost, seq, capture) - ticks[0]) / period  # in ticks
    on_grid = (due > -0.5) & (due < ticks.shape[0] - 0.5)
    lost, due = lost[on_grid], due[on_grid]
    below = np.floor(due).astype(np.int64)
    nearest = np.where(due - below < 0.5, below, below + 1)
    other = np.where(nearest == below, below + 1, below)
    either = (np.abs(due - below - 0.5) * period < HALFWAY_NS) & (other >= 0) & (
        other < ticks.shape[0])
    other = np.where(either, other, nearest)
    scored = (ticks >= capture.min()) & (ticks <= capture.max())
    should = np.zeros(ticks.shape[0], bool)
    should[nearest] = True
    should[other] = True
    found = flagged[nearest] | flagged[other]
    return Figures(int(lost.size), int(found.sum()), int((scored & ~should).sum()),
                   int((scored & ~should & flagged).sum()))
