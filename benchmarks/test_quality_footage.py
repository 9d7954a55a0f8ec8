"""Camera checks on real photographs, the long version of tests/test_quality_footage.py: more
scenes, more seeds, longer episodes, each recorded through the real OpenCV driver from a video
file with seeded faults and frames left out (`dropped`: scored on the ticks that should have
shown them, tests/footage.py `score_drops`). Writes each check's recall and false-flag rate, per
clip and pooled, to benchmarks/results/quality_footage.json. Target: recall >= 95%, false flags
<= 2%, each check.
"""

from __future__ import annotations

import pytest

from benchmarks.test_sync import write_result
from tests.footage import DROP_RATE, DROPPED, FAULTS, FPS, RATES, make_clip, record_clip, score

DURATION_S = 20.0
CLIPS = [("astronaut", 11), ("coffee", 12), ("chelsea", 13), ("camera", 14),
         ("immunohistochemistry", 15), ("coins", 16)]


def test_quality_checks_on_real_footage(benchmark, tmp_path):
    pytest.importorskip("skimage")
    clips = CLIPS if not benchmark.disabled else CLIPS[:1]  # smoke run: one short clip
    duration = DURATION_S if not benchmark.disabled else 5.0
    per_clip, pooled = [], {n: [0, 0, 0, 0] for n in (*FAULTS, DROPPED)}
    for photo, seed in clips:
        folder = tmp_path / f"{photo}-{seed}"
        folder.mkdir()
        video = folder / "clip.avi"
        truth = make_clip(video, photo, int(FPS * (duration + 10)), seed, drop_rate=DROP_RATE)
        figures = score(record_clip(folder, video, duration), truth)
        per_clip.append({"photo": photo, "seed": seed, **{
            n: {"shown": f.shown, "found": f.found, "others": f.others, "false": f.false}
            for n, f in figures.items()}})
        for n, f in figures.items():
            pooled[n] = [a + b for a, b in zip(pooled[n], (f.shown, f.found, f.others, f.false),
                                               strict=True)]
    summary = {n: {"recall": round(found / shown, 4) if shown else None,
                   "false_flags": round(false / others, 4) if others else None,
                   "frames_with_fault": shown, "frames_without": others}
               for n, (shown, found, others, false) in pooled.items()}
    if not benchmark.disabled:
        write_result("quality_footage", {
            "clips": f"{len(clips)} x {duration:.0f} s, 320x240 @ {FPS:.0f} fps MJPG through "
                     "opencv_camera, scikit-image photographs panned and zoomed",
            "injected_rates": {**RATES, DROPPED: DROP_RATE}, "checks": summary,
            "per_clip": per_clip})
        benchmark.extra_info.update({n: s["recall"] for n, s in summary.items()})
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    for n, s in summary.items():
        assert s["recall"] >= 0.95 and s["false_flags"] <= 0.02, (n, s)
