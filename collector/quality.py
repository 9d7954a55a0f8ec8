"""Quality checks, batched over whole chunks: what is wrong with each sample, and each tick.

Per sample (in perception, as samples arrive): out of range and saturated (signals), checksum
failures (any stream). Each check gives a score and a flag. Per tick: the scores and flags of the
sample the tick used (nearest streams) or the worst over the tick's window (aggregated streams),
plus `dropped`: the sample this tick should have used never arrived (a sequence gap).
Camera pixel checks (frozen, blurred, over/under-exposed) need the pixels, which only the
computation pool touches: it scores the frame each tick shows, beside the frame delivered before
it (`frame_scores`), so a tick's camera flags are those of the sample it shows; blur is then
judged against the camera's recent frames in execution, the one stage that sees them in order
(`BlurJudge`).
Everything is stored under /quality/<stream>/<check>[_score].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from collector.batch import GridBatch
from core.codec import decode_gray, jpeg_scale
from schemas.station import CameraChecks, SignalChecks

PERFORMANCE_CHECKS = ("dropped",)  # a sample that never arrived: a performance loss
CAMERA_CHECKS = ("frozen", "blurred", "overexposed", "underexposed", "checksum")
PIXEL_CHECKS = CAMERA_CHECKS[:4]  # need the frame's pixels: run in computation, on chosen frames
SIGNAL_CHECKS = ("out_of_range", "saturated", "checksum")
SCORE = "_score"
PREFIX = "quality:"  # per-sample check fields ride along with a stream's samples under this prefix


def checks_of(kind: str) -> tuple[str, ...]:
    """The checks of a stream kind, in the order losses are attributed (first failing wins)."""
    return PERFORMANCE_CHECKS + (CAMERA_CHECKS if kind == "camera" else SIGNAL_CHECKS)


def quality_datasets(kind: str) -> dict[str, str]:
    """Per-tick datasets under /quality/<stream>/ besides the sync fields: name -> dtype."""
    out = {}
    for check in checks_of(kind):
        out[check] = "bool"
        out[check + SCORE] = "float32"
    return out


# -- cameras ------------------------------------------------------------------------------------


def small_gray(frames: np.ndarray, downscale: int) -> np.ndarray:
    """(m, H, W, 3) RGB uint8 -> (m, H/d, W/d) gray uint8, area-averaged.

    The frames are stacked into one tall image so one OpenCV call converts, and one shrinks, the
    whole batch; when H is a multiple of `downscale` no averaging cell straddles two frames.
    """
    m, h, w = frames.shape[:3]
    if m == 0:
        return np.zeros((0, max(h // downscale, 1), max(w // downscale, 1)), np.uint8)
    gray = cv2.cvtColor(np.ascontiguousarray(frames).reshape(m * h, w, 3), cv2.COLOR_RGB2GRAY)
    if downscale == 1:
        return gray.reshape(m, h, w)
    sh, sw = max(h // downscale, 1), max(w // downscale, 1)
    if h % downscale == 0 and w % downscale == 0:
        factor = downscale
        while factor % 2 == 0:  # linear at exactly 1/2 is the 2x2 mean, 6x faster than AREA
            gray = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2),
                              interpolation=cv2.INTER_LINEAR)
            factor //= 2
        if factor > 1:
            gray = cv2.resize(gray, (sw, m * sh), interpolation=cv2.INTER_AREA)
        return gray.reshape(m, sh, sw)
    return np.stack([cv2.resize(g, (sw, sh), interpolation=cv2.INTER_AREA)
                     for g in gray.reshape(m, h, w)])


def jpeg_small_gray(data: np.ndarray, downscale: int, height: int, width: int
                    ) -> np.ndarray | None:
    """A camera's own JPEG as the checks see it: gray, `downscale` times smaller, the size
    `small_gray` gives its decoded frame. libjpeg decodes at 1/2, 1/4 or 1/8 directly (a
    scaled IDCT of each block: an average, as the area shrink is; luma only, no colour
    conversion), so no full-size frame is made; the rest of the shrink is an area resize.
    None when the bytes do not decode."""
    gray = decode_gray(data, jpeg_scale(downscale))
    if gray is None:
        return None
    size = (max(width // downscale, 1), max(height // downscale, 1))
    if gray.shape[::-1] != size:  # rest of the shrink, or a size that is no multiple of it
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


SHARPNESS_TILES = 6  # per side: a timestamp or a marker covers a few of the 36 tiles, never half


def tile_sharpness(gray: np.ndarray) -> np.ndarray:
    """(m, h, w) uint8 -> (m,) sharpness: the median over a grid of tiles of the mean square of
    the 4-neighbour Laplacian. The median, so a small sharp region (a burned-in timestamp, a
    sharp corner) on a defocused scene still reads as the defocused scene it is on."""
    m, h, w = gray.shape
    if m == 0 or h < 3 or w < 3:
        return np.zeros(m, np.float32)
    lap = cv2.Laplacian(gray.reshape(m * h, w), cv2.CV_16S, ksize=1).reshape(m, h, w)
    inner = lap[:, 1:-1, 1:-1]  # rows at frame seams excluded
    t = max(1, min(SHARPNESS_TILES, (h - 2) // 2, (w - 2) // 2))
    th, tw = (h - 2) // t, (w - 2) // t
    energy = np.square(inner[:, :th * t, :tw * t], dtype=np.float32)
    tiles = energy.reshape(m, t, th, t, tw).mean(axis=(2, 4)).reshape(m, t * t)
    return np.median(tiles, axis=1).astype(np.float32)


def clipped_fraction(gray: np.ndarray, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """Share of pixels at or below `low` and at or above `high`, per frame."""
    m, h, w = gray.shape
    flat = gray.reshape(m, h * w)
    n = max(h * w, 1)
    return ((flat <= low).sum(axis=1) / n).astype(np.float32), \
        ((flat >= high).sum(axis=1) / n).astype(np.float32)


def exposure_scores(gray: np.ndarray, checks: CameraChecks) -> dict[str, np.ndarray]:
    """Over- and under-exposure as a photographer judges them: clipped highlights (crushed
    shadows) over a share of the frame, or a scene washed out (sunk) as a whole, which a
    brightened scene is even when few of its pixels reach pure white. Score: the worse of the
    two against its threshold, so 1 and above is flagged."""
    m = gray.shape[0]
    under, over = clipped_fraction(gray, checks.clip_low, checks.clip_high)
    mean = gray.reshape(m, -1).mean(axis=1).astype(np.float32) if m else np.zeros(0, np.float32)
    over_flag = (over >= checks.overexposed_fraction) | (mean >= checks.overexposed_mean)
    under_flag = (under >= checks.underexposed_fraction) | (mean <= checks.underexposed_mean)
    return {
        "overexposed": over_flag,
        "overexposed" + SCORE: np.maximum(over / checks.overexposed_fraction,
                                          mean / checks.overexposed_mean),
        "underexposed": under_flag,
        "underexposed" + SCORE: np.maximum(under / checks.underexposed_fraction,
                                           checks.underexposed_mean / np.maximum(mean, 0.5)),
    }


class SharpnessBaseline:
    """A camera's recent sharpness: the last `window` usable frames' (ring buffer, bounded)."""

    def __init__(self, window: int):
        self.window = window
        self._ring = np.zeros(window, np.float32)
        self._filled = 0
        self._at = 0

    @property
    def known(self) -> int:
        """How many usable frames the camera's recent sharpness holds."""
        return self._filled

    def judge(self, sharpness: np.ndarray, usable: np.ndarray, checks: CameraChecks,
              ahead: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Blurred flags and sharpness relative to the median of the recent frames, the
        usable ones given and `ahead` (usable frames delivered after these, so the first
        frames of a run are judged against more than themselves); then remembers the given.
        Relative, because what a sharp frame reads depends on the scene: a white wall in
        focus has less edge energy than a defocused workbench."""
        later = ahead if ahead is not None else np.zeros(0, np.float32)
        known = np.concatenate([self._ring[:self._filled], sharpness[usable], later])
        base = float(np.median(known)) if known.size else 0.0
        relative = sharpness / base if base > 0 else np.full_like(sharpness, np.nan)
        blurred = (relative < checks.blur_relative) | (sharpness < checks.blur_min_laplacian)
        self._remember(sharpness[usable])
        return blurred, relative.astype(np.float32)

    def _remember(self, values: np.ndarray) -> None:
        size = self._ring.shape[0]
        values = values[-size:]
        self._ring[(self._at + np.arange(values.size)) % size] = values
        self._at = (self._at + values.size) % size
        self._filled = min(size, self._filled + values.size)


def frame_scores(gray: np.ndarray, previous: np.ndarray, has_previous: np.ndarray,
                 checks: CameraChecks,
                 baseline: SharpnessBaseline | None = None) -> dict[str, np.ndarray]:
    """Scores and flags of frames given as small grays (`small_gray`), each beside the frame
    its camera delivered before it (`previous[i]`, where `has_previous[i]`).

    Without a `baseline` (the computation pool, whose workers each see only some batches) blur
    is judged on the absolute floor alone and its score is the raw sharpness: `BlurJudge` in
    the ordered execution stage judges it against the camera's recent frames."""
    m = gray.shape[0]
    sharpness = tile_sharpness(gray)
    change = np.full(m, np.nan, np.float32)  # no previous frame: NaN, which is never frozen
    if has_previous.any():
        a, b = gray[has_previous], previous[has_previous]
        # as one tall 2-D image: OpenCV reads a 3-D array's last axis as channels (at most
        # 128 in OpenCV 5.1, 512 before), and frames are a stack, not a colour image
        n, h, w = a.shape
        moved = cv2.absdiff(a.reshape(n * h, w), b.reshape(n * h, w))
        change[has_previous] = moved.reshape(n, -1).mean(axis=1)
    exposure = exposure_scores(gray, checks)
    # a clipped frame has no edges to measure: it is flagged for exposure, not for blur
    clipped = exposure["overexposed"] | exposure["underexposed"]
    if baseline is None:
        blurred, blur_score = sharpness < checks.blur_min_laplacian, sharpness
    else:
        blurred, blur_score = baseline.judge(sharpness, ~clipped, checks)
    return {
        "frozen": change <= checks.frozen_max_diff,  # NaN (no previous frame) compares False
        "frozen" + SCORE: change,
        "blurred": blurred & ~clipped,
        "blurred" + SCORE: blur_score,
        **exposure,
    }


def camera_scores(frames: np.ndarray, previous: np.ndarray | None, checks: CameraChecks,
                  baseline: SharpnessBaseline | None = None,
                  ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Scores and flags of consecutive frames; returns them and the last small frame (for the
    next call). `previous`: the small frame delivered just before `frames[0]`, if any;
    `baseline`: the camera's recent sharpness (none: these frames are all it has)."""
    gray = small_gray(frames, checks.downscale)
    m = gray.shape[0]
    has = np.ones(m, bool)
    before = np.empty_like(gray)
    if m:
        before[1:] = gray[:-1]
        has[0] = previous is not None and previous.shape == gray.shape[1:]
        before[0] = previous if has[0] else 0
    last = gray[-1].copy() if m else previous
    baseline = baseline or SharpnessBaseline(checks.blur_window)
    return frame_scores(gray, before, has, checks, baseline), last


SETTLE_FRAMES = 10  # usable frames a camera's blur is first judged against (at most its window)


class BlurJudge:
    """Judges each camera's blur against its own recent frames, batch after batch in order
    (the computation pool scored the frames, but each of its workers sees only some batches).
    Kept across episodes: it is the camera's sharpness, not the episode's.

    A camera with no history yet (the start of a run) cannot judge its first frames against
    themselves: a run that starts on a defocused frame, or on a batch of mostly defocused
    ones, would call them sharp. So until a camera has `SETTLE_FRAMES` usable frames, its
    frames are judged against those delivered after them too (`waiting`, `apply(ahead=)`)."""

    def __init__(self) -> None:
        self._baselines: dict[str, SharpnessBaseline] = {}

    def _baseline(self, name: str, camera: CameraChecks) -> SharpnessBaseline:
        baseline = self._baselines.get(name)
        if baseline is None or baseline.window != camera.blur_window:
            baseline = self._baselines[name] = SharpnessBaseline(camera.blur_window)
        return baseline

    def _settling(self, checks: dict[str, CameraChecks]) -> list[tuple[str, int]]:
        """Cameras still short of frames to judge against, with how many they lack."""
        out = []
        for name, camera in checks.items():
            lack = min(SETTLE_FRAMES, camera.blur_window) - self._baseline(name, camera).known
            if lack > 0:
                out.append((name, lack))
        return out

    def waiting(self, ahead: Sequence[GridBatch], checks: dict[str, CameraChecks]) -> bool:
        """Whether some camera still lacks frames to judge against, counting those in `ahead`
        (the batches arrived in order and not yet judged)."""
        return any(sum(int(_usable(b, name)[1].size) for b in ahead) < lack
                   for name, lack in self._settling(checks))

    def settled(self, checks: dict[str, CameraChecks]) -> bool:
        return not self._settling(checks)

    def apply(self, batch: GridBatch, checks: dict[str, CameraChecks],
              ahead: Sequence[GridBatch] = ()) -> None:
        """Judge `batch`; `ahead`: batches after it, not yet judged, whose usable frames
        complete the comparison of a camera that has too few of its own yet."""
        for name, camera in checks.items():
            stream = batch.streams.get(name)
            if stream is None or "blurred" + SCORE not in stream.scores:
                continue
            baseline = self._baseline(name, camera)
            later = None
            if ahead and baseline.known < min(SETTLE_FRAMES, camera.blur_window):
                later = np.concatenate([_usable(b, name)[1] for b in ahead] + [
                    np.zeros(0, np.float32)])
            usable, _ = _usable(batch, name)
            blurred, relative = baseline.judge(stream.scores["blurred" + SCORE], usable,
                                               camera, later)
            stream.flags["blurred"] = blurred & ~_clipped(stream.flags)
            stream.scores["blurred" + SCORE] = relative


def _clipped(flags: dict[str, np.ndarray]) -> np.ndarray:
    """Ticks with no edges to measure: clipped, or a frame that did not decode (its checks
    are those of a black frame; flagged `checksum`, see stages/computation.py)."""
    out = flags["overexposed"] | flags["underexposed"]
    return out | flags["checksum"] if "checksum" in flags else out


def _usable(batch: GridBatch, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A batch's camera ticks with a measurable sharpness (delivered, not clipped): their
    mask, and their raw sharpness (before `BlurJudge.apply` makes it relative)."""
    stream = batch.streams.get(name)
    if stream is None or "blurred" + SCORE not in stream.scores:
        return np.zeros(0, bool), np.zeros(0, np.float32)
    usable = ~_clipped(stream.flags) & ~stream.missing
    return usable, stream.scores["blurred" + SCORE][usable]


# -- signals ------------------------------------------------------------------------------------


def signal_scores(fields: dict[str, np.ndarray], n: int,
                  checks: SignalChecks | None) -> dict[str, np.ndarray]:
    """Out of range: the largest excursion past [min, max] (non-finite counts as infinite).
    Saturated: the largest |value| as a share of full scale, flagged at 1 and above."""
    excursion = np.zeros(n, np.float32)
    peak = np.zeros(n, np.float32)
    if checks is not None:
        for values in fields.values():
            if not np.issubdtype(values.dtype, np.number) or values.shape[0] != n:
                continue
            v = values.reshape(n, -1).astype(np.float64)
            bad = ~np.isfinite(v)
            v = np.where(bad, 0.0, v)
            over = np.zeros_like(v)
            if checks.max is not None:
                over = np.maximum(over, v - checks.max)
            if checks.min is not None:
                over = np.maximum(over, checks.min - v)
            over[bad] = np.inf
            if v.shape[1]:
                excursion = np.maximum(excursion, over.max(axis=1).astype(np.float32))
                if checks.saturation is not None:
                    share = np.abs(v).max(axis=1) / checks.saturation
                    peak = np.maximum(peak, share.astype(np.float32))
    return {
        "out_of_range": excursion > 0, "out_of_range" + SCORE: excursion,
        "saturated": peak >= 1.0, "saturated" + SCORE: peak,
    }


# -- sequence gaps and checksum failures --------------------------------------------------------


@dataclass
class Gaps:
    """Dropped samples found in one chunk, and where they should have been."""

    times: np.ndarray  # (k,) int64 expected capture time of each dropped sample
    after: np.ndarray  # (g,) index into the chunk of each sample that follows a gap
    seq: np.ndarray  # (k,) sequence number of each dropped sample


def find_gaps(seq: np.ndarray, times: np.ndarray, previous: tuple[int, int] | None) -> Gaps:
    """Sequence gaps in a chunk (and between it and the previous sample `(seq, time)`).

    A gap of k samples between samples at tp and tn puts the lost ones evenly in between.
    """
    empty = np.zeros(0, np.int64)
    if seq.shape[0] == 0:
        return Gaps(empty, empty.astype(np.intp), empty)
    if previous is not None:
        seq = np.concatenate([[previous[0]], seq])
        times = np.concatenate([[previous[1]], times])
    lost = np.diff(seq) - 1
    at = np.flatnonzero(lost > 0)
    if at.size == 0:
        return Gaps(empty, empty.astype(np.intp), empty)
    k = lost[at]
    step = (times[at + 1] - times[at]) // (k + 1)
    j = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k) + 1  # 1..k within each gap
    expected = np.repeat(times[at], k) + j * np.repeat(step, k)
    after = at + 1 - (1 if previous is not None else 0)  # index into the chunk itself
    return Gaps(expected.astype(np.int64), after.astype(np.intp),
                (np.repeat(seq[at], k) + j).astype(np.int64))


def checksum_counts(n: int, failures: int, after_gap: np.ndarray) -> np.ndarray:
    """Spread a chunk's checksum failures over its samples: a packet that failed its checksum
    leaves a sequence gap, so each failure goes to the sample after a gap (the chunk's last
    sample takes any failure no gap explains)."""
    out = np.zeros(n, np.float32)
    if failures <= 0 or n == 0:
        return out
    used = after_gap[:failures]
    np.add.at(out, used, 1.0)
    out[-1] += failures - used.size
    return out


def dropped_on_grid(drop_times: np.ndarray, grid: np.ndarray, period_ns: int,
                    dt_ns: np.ndarray, sample_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Per tick: was the sample it should have shown dropped, and how many dropped samples is
    this the nearest tick to.

    A stream about as slow as the grid (a camera) has one sample per tick, so every drop costs
    its nearest tick, whatever frame timing noise put there instead. A faster stream (a 1 kHz
    sensor) loses a tick only when the dropped sample was nearer to it than the one used: the
    tick's other samples make up for the rest.
    """
    m = grid.shape[0]
    flag = np.zeros(m, bool)
    count = np.zeros(m, np.float32)
    if m == 0 or drop_times.shape[0] == 0:
        return flag, count
    tick = (drop_times - grid[0] + period_ns // 2) // period_ns
    inside = (tick >= 0) & (tick < m)
    tick, times = tick[inside], drop_times[inside]
    if tick.size == 0:
        return flag, count
    one_per_tick = 3 * sample_ns >= 2 * period_ns
    would_use = one_per_tick | (np.abs(times - grid[tick]) <= dt_ns[tick])
    count += np.bincount(tick, minlength=m).astype(np.float32)
    flag[tick[would_use]] = True
    return flag, count


# -- state per stream ---------------------------------------------------------------------------


@dataclass
class StreamChecker:
    """Runs the per-sample checks of one stream, carrying what the next chunk needs."""

    kind: str
    camera: CameraChecks | None = None
    signal: SignalChecks | None = None
    previous_frame: np.ndarray | None = None
    previous_sample: tuple[int, int] | None = None  # (seq, capture_ns) of the last sample seen
    baseline: SharpnessBaseline | None = None  # the camera's recent sharpness
    _fields: tuple[str, ...] = field(default=(), init=False)

    def reset(self) -> None:
        self.previous_frame = None
        self.previous_sample = None

    def scores(self, times: np.ndarray, seq: np.ndarray, fields: dict[str, np.ndarray],
               checksum_failures: int) -> tuple[dict[str, np.ndarray], Gaps]:
        """Per-sample check fields (flags as uint8, so window aggregation takes their max) and
        the sequence gaps of this chunk."""
        n = times.shape[0]
        gaps = find_gaps(seq, times, self.previous_sample)
        if n:
            self.previous_sample = (int(seq[-1]), int(times[-1]))
        if self.kind == "camera":
            # pixel checks run in computation, on the frames the grid chose
            out: dict[str, np.ndarray] = {}
            if "image" in fields:  # ...unless the pixels are here
                checks = self.camera or CameraChecks()
                self.baseline = self.baseline or SharpnessBaseline(checks.blur_window)
                out, self.previous_frame = camera_scores(fields["image"], self.previous_frame,
                                                         checks, self.baseline)
        else:
            out = signal_scores(fields, n, self.signal)
        counts = checksum_counts(n, checksum_failures, gaps.after)
        out["checksum"] = counts > 0
        out["checksum" + SCORE] = counts
        return {PREFIX + k: (v.astype(np.uint8) if v.dtype == bool else v)
                for k, v in out.items()}, gaps


def split_checks(values: dict[str, np.ndarray]) -> tuple[dict, dict, dict]:
    """Separate aligned values into (data fields, flags as bool, scores)."""
    data, flags, scores = {}, {}, {}
    for key, v in values.items():
        if not key.startswith(PREFIX):
            data[key] = v
        elif key.endswith(SCORE):
            scores[key[len(PREFIX):]] = v.astype(np.float32)
        else:
            flags[key[len(PREFIX):]] = v.astype(bool)
    return data, flags, scores
