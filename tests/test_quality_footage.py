"""Camera checks on real photographs, recorded through the real OpenCV driver from a video file
(tests/footage.py): each check finds >= 95% of the frames showing its fault and flags <= 2% of
the others; `dropped` finds >= 95% of the frames left out of the file on the ticks that should
have shown them, and flags <= 2% of the other ticks. The longer version, over more scenes and
seeds, is benchmarks/test_quality_footage.py.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from collector.batch import EpisodeClock, GridBatch, StreamOnGrid
from collector.quality import BlurJudge, frame_scores, small_gray
from schemas.station import CameraChecks
from tests.footage import (
    DROP_RATE,
    DROPPED,
    FAULTS,
    FPS,
    make_clip,
    overlay,
    photograph,
    record_clip,
    score,
    sensor_noise,
    spoil,
    view,
)

DURATION_S = 10.0
# the driver plays the file from when it opens, before the episode starts: a margin for start-up
CLIP_FRAMES = int(FPS * (DURATION_S + 8))


@pytest.mark.parametrize(("photo", "seed"), [
    ("astronaut", 1), pytest.param("coffee", 2, marks=pytest.mark.slow),
    pytest.param("chelsea", 3, marks=pytest.mark.slow)])
def test_real_footage_faults_are_found(tmp_path, photo, seed):
    pytest.importorskip("skimage")
    video = tmp_path / f"{photo}.avi"
    truth = make_clip(video, photo, CLIP_FRAMES, seed, drop_rate=DROP_RATE)
    figures = score(record_clip(tmp_path, video, DURATION_S), truth)
    print(f"\n{photo} seed {seed}: " + ", ".join(
        f"{n} {f.found}/{f.shown} found, {f.false}/{f.others} false" for n, f in figures.items()))
    for name in (*FAULTS, DROPPED):
        f = figures[name]
        assert f.shown >= 5, (name, f)  # enough injected frames shown to measure recall
        assert f.recall >= 0.95, (name, f)
        assert f.false_rate <= 0.02, (name, f)


@pytest.mark.slow
def test_frozen_frames_of_a_camera_slower_than_the_reads_are_found(tmp_path):
    """A 5 fps camera read every 100 ms: about every other read brings no frame. Each frozen
    frame must still be compared with the frame delivered just before it, not one further back
    (an empty read once shifted that pairing by one frame for the rest of the episode)."""
    pytest.importorskip("skimage")
    fps, duration = 5.0, 16.0
    video = tmp_path / "slow.avi"
    rates = {"blurred": 0.0, "overexposed": 0.0, "underexposed": 0.0, "frozen": 0.2}
    truth = make_clip(video, "coffee", int(fps * (duration + 8)), 4, fps=fps, rates=rates)
    figures = score(record_clip(tmp_path, video, duration, fps=fps), truth)["frozen"]
    print(f"\nslow camera: frozen {figures.found}/{figures.shown} found, "
          f"{figures.false}/{figures.others} false")
    assert figures.shown >= 5, figures
    assert figures.recall >= 0.95, figures
    assert figures.false_rate <= 0.02, figures


def test_a_run_that_starts_on_defocused_frames_finds_them():
    """A camera with no history yet: the first frames of a run, one batch each, the first two
    defocused. Judged against themselves alone they read as the camera's normal sharpness (a
    smoke run under load started on such a frame and missed it); execution holds them until
    the camera has shown frames to judge them against, and they are found."""
    pytest.importorskip("skimage")
    rng = np.random.default_rng(5)
    image = photograph("astronaut")
    frames = []
    for i in range(14):
        frame = view(image, i / 300)
        if i < 2:
            frame = spoil(frame, "blurred", rng)
        frame = sensor_noise(frame, rng)
        overlay(frame, i)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    checks = {"cam": CameraChecks()}
    gray = small_gray(np.stack(frames), checks["cam"].downscale)
    batches = []
    for i in range(len(frames)):  # as the computation pool scores them: no baseline
        scores = frame_scores(gray[i:i + 1], gray[max(i - 1, 0):i + 1][:1], np.array([i > 0]),
                              checks["cam"])
        stream = StreamOnGrid(values={}, capture_ns=np.array([i]), dt_ns=np.zeros(1, np.int64),
                              missing=np.zeros(1, bool),
                              flags={k: v for k, v in scores.items() if v.dtype == bool},
                              scores={k: v for k, v in scores.items() if v.dtype != bool})
        batches.append(GridBatch(EpisodeClock("e", 0, 33_333_333, len(frames)), i,
                                 i == len(frames) - 1, i, np.array([i]), {"cam": stream}, {},
                                 {}))
    judge, held, flags = BlurJudge(), [], []
    for batch in batches:  # as execution drains them, in order
        held.append(batch)
        if judge.waiting(held, checks) and not batch.final:
            continue
        while held:
            judge.apply(held[0], checks, held[1:])
            flags.append(bool(held.pop(0).streams["cam"].flags["blurred"][0]))
    assert flags == [True, True] + [False] * 12
