"""The benchmark code runs, on small data, and both sync implementations agree (no timing)."""

from __future__ import annotations

import numpy as np

from benchmarks.test_quality import check_frames, jpeg_frames, sim_frames
from benchmarks.test_sync import station_data, sync_per_message, sync_vectorized


def test_vectorized_sync_matches_the_per_message_matcher():
    streams, grid = station_data(3.0, seed=5)
    fast = sync_vectorized(streams, grid)
    slow = sync_per_message(streams, grid)
    for s in streams:
        values, missing = fast[s.name]
        picked = slow[s.name]
        assert len(picked) == len(grid)
        np.testing.assert_array_equal(missing, [p is None for p in picked], err_msg=s.name)
        ok = ~missing
        np.testing.assert_allclose(values[ok], np.stack([p for p in picked if p is not None]),
                                   rtol=1e-5, atol=1e-6, err_msg=s.name)


def test_quality_benchmark_functions_run():
    frames = sim_frames(6)
    scores, last = check_frames(frames)
    assert scores["blurred"].shape == (6,) and last.shape == (120, 160)
    assert len(jpeg_frames(frames)) == 6
