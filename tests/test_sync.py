"""`align_to_grid` against a brute-force reference, and across chunk boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from collector.batch import EpisodeClock, RawBatch
from collector.stages.perception import Perception, StreamPlan
from collector.sync import align_to_grid
from drivers.chunk import Chunk

MS = 1_000_000


def brute_force(times, values, grid, method, tol, period):
    out, missing = [], []
    for t in grid:
        if method == "nearest":
            i = int(np.argmin(np.abs(times - t)))
            out.append(values[i])
            missing.append(abs(times[i] - t) > tol)
        elif method == "interpolate":
            before, after = times[times <= t], times[times >= t]
            nearest = np.min(np.abs(times - t))
            if len(before) and len(after) and t - before[-1] <= tol and after[0] - t <= tol:
                out.append(np.array([np.interp(t, times, values[:, c])
                                     for c in range(values.shape[1])]))
            else:  # no line across a gap: the nearest sample
                out.append(values[int(np.argmin(np.abs(times - t)))])
            missing.append(nearest > tol or t < times[0] - tol or t > times[-1] + tol)
        else:
            window = values[(times > t - period) & (times <= t)]
            if len(window) == 0:
                out.append(values[int(np.argmin(np.abs(times - t)))])
                missing.append(True)
                continue
            reduce = {"mean": lambda w: w.mean(axis=0), "max": lambda w: w.max(axis=0),
                      "last": lambda w: w[-1]}[method]
            out.append(reduce(window))
            missing.append(False)
    return np.array(out), np.array(missing)


@pytest.mark.parametrize("method", ["nearest", "interpolate", "mean", "max", "last"])
def test_matches_brute_force(method):
    rng = np.random.default_rng(7)
    times = np.sort(rng.integers(0, 2000 * MS, 3000)).astype(np.int64)
    times = np.unique(times)
    times = np.delete(times, np.s_[1000:1400])  # a gap: missing ticks in it
    values = rng.normal(size=(times.size, 3))
    grid = np.arange(0, 2000 * MS, 33 * MS, dtype=np.int64)
    got = align_to_grid(times, {"v": values}, grid, method, 5 * MS, 33 * MS)
    want, missing = brute_force(times, values, grid, method, 5 * MS, 33 * MS)
    np.testing.assert_array_equal(got.missing, missing)
    ok = ~missing
    np.testing.assert_allclose(got.values["v"][ok], want[ok], rtol=1e-9, atol=1e-12)
    assert missing.sum() > 5  # the gap really produced missing ticks


def test_interpolation_never_draws_a_line_across_a_gap():
    """A tick 1 ms after a stream's last sample before a dropout shows that sample: the sample
    after the dropout is 600 ms away, and what lies between was never measured."""
    times = np.array([0, 10, 20, 620], dtype=np.int64) * MS
    values = np.array([[0.0], [1.0], [2.0], [62.0]])
    grid = np.array([15, 21, 320, 619], dtype=np.int64) * MS
    got = align_to_grid(times, {"v": values}, grid, "interpolate", 30 * MS, 33 * MS)
    np.testing.assert_allclose(got.values["v"][:, 0], [1.5, 2.0, 2.0, 62.0])
    np.testing.assert_array_equal(got.missing, [False, False, True, False])


def _chunk(times, values):
    n = times.size
    return Chunk("s", "sensor", times, times.copy(), times.copy(), np.arange(n),
                 {"v": values})


@pytest.mark.parametrize("method", ["nearest", "interpolate", "mean"])
def test_chunk_boundaries_do_not_change_the_result(method):
    """Samples split over many reads land exactly where they would in one read."""
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.integers(800_000, 1_200_000, 5000)).astype(np.int64)
    values = rng.normal(size=(times.size, 2))
    clock = EpisodeClock("e", int(times[10]), 33 * MS, int((times[-1] - times[10]) // (33 * MS)))
    plan = [StreamPlan("s", "sensor", method, 3 * MS)]

    whole = Perception(plan).process(RawBatch(clock, 0, int(times[-1]), True,
                                              {"s": _chunk(times, values)}))
    cuts = np.sort(rng.choice(np.arange(1, times.size), 40, replace=False))
    parts = np.split(np.arange(times.size), cuts)
    perception = Perception(plan)
    grids, aligned = [], []
    for i, idx in enumerate(parts):
        final = i == len(parts) - 1
        read_ns = int(times[idx[-1]]) + 1
        out = perception.process(RawBatch(clock, i, read_ns, final,
                                          {"s": _chunk(times[idx], values[idx])}))
        grids.append(out.timestamps)
        aligned.append(out.streams["s"].values["v"])
    np.testing.assert_array_equal(np.concatenate(grids), whole.timestamps)
    np.testing.assert_allclose(np.concatenate(aligned), whole.streams["s"].values["v"])
    assert len(whole.timestamps) == clock.ticks


def test_samples_past_the_episode_do_not_pile_up():
    """A loop running late keeps reading after the last tick: those samples are not kept."""
    clock = EpisodeClock("e", 0, 33 * MS, 10)
    perception = Perception([StreamPlan("s", "sensor", "nearest", 5 * MS)])
    t = 0
    for i in range(40):
        times = t + np.arange(30, dtype=np.int64) * 10 * MS
        t = int(times[-1]) + 10 * MS
        perception.process(RawBatch(clock, i, t, False, {"s": _chunk(times, np.ones((30, 2)))}))
    assert len(perception._pending["s"]) < 80  # 40 batches of 30: one kept per batch at most


@pytest.mark.parametrize("method", ["nearest", "interpolate", "mean"])
def test_a_read_settles_every_tick_before_its_newest_sample(method):
    """Capture times never step back, so a sample past a tick fixes it: the tick goes out with
    that read, not the next one (the next read is a whole chunk later)."""
    period = 33 * MS
    clock = EpisodeClock("e", 0, period, 30)
    perception = Perception([StreamPlan("s", "sensor", method, 20 * MS)])
    times = np.arange(30, dtype=np.int64) * period + 10 * MS  # a camera 10 ms after the grid
    emitted = 0
    for i, stop in enumerate((3, 7, 12)):  # reads of 3, 4 and 5 samples
        first = (0, 3, 7)[i]
        read = times[first:stop]
        out = perception.process(RawBatch(clock, i, int(read[-1]) + MS, False,
                                          {"s": _chunk(read, np.ones((read.size, 2)))}))
        emitted = out.first_tick + len(out.timestamps)
        # ticks 0..stop-1 lie before the newest sample (tick stop-1 + 10 ms): all of them out
        assert emitted == stop, (method, i, emitted)
        # each on its sample (mean: the window (tick - period, tick] holds one from tick 1 on)
        assert not out.streams["s"].missing[1 if i == 0 else 0:].any(), (method, i)
