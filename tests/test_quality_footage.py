"""Camera checks on real photographs, recorded through the real OpenCV driver from a video file
(tests/footage.py): each check finds >= 95% of the frames showing its fault and flags <= 2% of
the others. The longer version, over more scenes and seeds, is benchmarks/test_quality_footage.py.
"""

from __future__ import annotations

import pytest

from tests.footage import FAULTS, FPS, make_clip, record_clip, score

DURATION_S = 10.0
# the driver plays the file from when it opens, before the episode starts: a margin for start-up
CLIP_FRAMES = int(FPS * (DURATION_S + 8))


@pytest.mark.parametrize(("photo", "seed"), [("astronaut", 1), ("coffee", 2), ("chelsea", 3)])
def test_real_footage_faults_are_found(tmp_path, photo, seed):
    pytest.importorskip("skimage")
    video = tmp_path / f"{photo}.avi"
    truth = make_clip(video, photo, CLIP_FRAMES, seed)
    figures = score(record_clip(tmp_path, video, DURATION_S), truth)
    print(f"\n{photo} seed {seed}: " + ", ".join(
        f"{n} {f.found}/{f.shown} found, {f.false}/{f.others} false" for n, f in figures.items()))
    for name in FAULTS:
        f = figures[name]
        assert f.shown >= 5, (name, f)  # enough injected frames shown to measure recall
        assert f.recall >= 0.95, (name, f)
        assert f.false_rate <= 0.02, (name, f)
