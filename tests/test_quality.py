"""Quality checks, derived signals and efficiency accounting, on real simulated frames and data."""

from __future__ import annotations

import numpy as np
import pytest

from collector.batch import EpisodeClock, GridBatch, RawBatch, StreamOnGrid
from collector.config import load_station
from collector.derive import finite_difference, lowpass
from collector.efficiency import EpisodeTally
from collector.errors import ConfigError
from collector.quality import (
    BlurJudge,
    StreamChecker,
    camera_scores,
    checksum_counts,
    dropped_on_grid,
    find_gaps,
    signal_scores,
)
from collector.stages.computation import Computation
from collector.stages.perception import Perception, StreamPlan
from drivers.chunk import Chunk
from drivers.sim.camera import SimCamera, injected_faults, read_counter
from drivers.sim.world import SimWorld
from schemas.devices import Faults, SimCameraConfig
from schemas.station import CameraChecks, ImageEncoding, SignalChecks
from tests.conftest import SIM_CONFIG

MS = 1_000_000
FAULTS = Faults(drop_rate=0.05, frozen_rate=0.05, blur_rate=0.05, overexposed_rate=0.05, seed=11)


def sim_camera(faults: Faults = FAULTS, view: int = 0) -> SimCamera:
    config = SimCameraConfig(name="cam", type="sim_camera", faults=faults)
    return SimCamera(config, SimWorld(), view=view, realtime=False)


def capture_frames(camera: SimCamera, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Drive the camera's capture n times, as its reader thread would; (seq, frames) delivered."""
    seq, frames = [], []
    for _ in range(n):
        block = camera._capture()
        if block is not None:
            seq.append(int(block.seq[0]))
            frames.append(block.values["image"][0])
    return np.array(seq), np.stack(frames)


@pytest.fixture(scope="module")
def delivered():
    return capture_frames(sim_camera(), 400)


def test_ground_truth_reproduces_what_the_camera_did(delivered):
    seq, frames = delivered
    truth = injected_faults(FAULTS, 0, 400)
    np.testing.assert_array_equal(seq, np.flatnonzero(~truth["dropped"]))
    for name in ("dropped", "frozen", "blurred", "overexposed"):
        assert 5 <= truth[name].sum() <= 40, name  # the rates really were injected
    same_as_previous = np.r_[False, [np.array_equal(a, b)
                                     for a, b in zip(frames[1:], frames[:-1], strict=True)]]
    np.testing.assert_array_equal(same_as_previous, truth["frozen"][seq])  # exact copies
    # a frozen frame shows its source's counter, every other frame its own (where readable)
    readable = ~truth["overexposed"][seq]
    counters = np.array([read_counter(f) for f in frames[readable]])
    np.testing.assert_array_equal(counters, truth["source"][seq][readable])


def test_camera_checks_find_every_injected_fault(delivered):
    seq, frames = delivered
    truth = {k: v[seq] for k, v in injected_faults(FAULTS, 0, 400).items()}
    scores, _ = camera_scores(frames, None, CameraChecks())
    for name in ("frozen", "blurred", "overexposed"):
        np.testing.assert_array_equal(scores[name], truth[name], err_msg=name)
    assert not scores["underexposed"].any()
    dark = camera_scores(frames[:3] // 40, None, CameraChecks())[0]
    assert dark["underexposed"].all() and not dark["blurred"].any()


def test_camera_checks_carry_the_previous_frame_across_chunks(delivered):
    _, frames = delivered
    whole, _ = camera_scores(frames, None, CameraChecks())
    checker = StreamChecker("camera", camera=CameraChecks())
    parts = [checker.scores(np.arange(len(idx)), idx, {"image": frames[idx]}, 0)[0]
             for idx in np.array_split(np.arange(len(frames)), 7)]
    for name in ("frozen", "blurred", "overexposed"):
        joined = np.concatenate([p["quality:" + name] for p in parts]).astype(bool)
        np.testing.assert_array_equal(joined, whole[name])
    np.testing.assert_allclose(np.concatenate([p["quality:frozen_score"] for p in parts])[1:],
                               whole["frozen_score"][1:])


def test_gaps_put_lost_samples_where_they_belonged():
    seq = np.array([5, 6, 9, 10, 12])
    times = seq * 10 * MS
    gaps = find_gaps(seq, times, previous=(3, 30 * MS))
    np.testing.assert_array_equal(gaps.times, np.array([4, 7, 8, 11]) * 10 * MS)
    np.testing.assert_array_equal(gaps.after, [0, 2, 4])
    np.testing.assert_array_equal(checksum_counts(5, 2, gaps.after), [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(checksum_counts(5, 4, gaps.after), [1, 0, 1, 0, 2])


def test_a_dropped_camera_frame_costs_its_nearest_tick_a_sensor_drop_only_if_used():
    grid = np.arange(10) * 33 * MS
    drops = np.array([50, 100, 299]) * MS  # nearest ticks 2 (16 ms away), 3 (1 ms), 9 (2 ms)
    dt = np.full(10, 2 * MS)
    flag, count = dropped_on_grid(drops, grid, 33 * MS, dt, sample_ns=33 * MS)
    np.testing.assert_array_equal(np.flatnonzero(flag), [2, 3, 9])
    np.testing.assert_array_equal(count[[2, 3, 9]], [1, 1, 1])
    flag, _ = dropped_on_grid(drops, grid, 33 * MS, dt, sample_ns=1 * MS)  # a 1 kHz sensor
    np.testing.assert_array_equal(np.flatnonzero(flag), [3, 9])  # no farther than the used


def test_signal_checks_range_saturation_and_non_finite():
    values = np.array([[0.0, 1.0], [5.0, -1.0], [0.0, np.nan], [9.5, 0.0]], np.float32)
    out = signal_scores({"v": values}, 4, SignalChecks(min=-2, max=4, saturation=9.5))
    np.testing.assert_array_equal(out["out_of_range"], [False, True, True, True])
    np.testing.assert_allclose(out["out_of_range_score"], [0, 1, np.inf, 5.5])
    np.testing.assert_array_equal(out["saturated"], [False, False, False, True])
    assert not signal_scores({"v": values}, 4, None)["out_of_range"].any()


def test_lowpass_matches_the_recursive_filter_whatever_the_chunks():
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.integers(800_000, 1_200_000, 3000)).astype(np.int64)
    x = rng.normal(size=(3000, 3))
    y, ref, last = x[0].copy(), [], t[0]
    for ti, xi in zip(t, x, strict=True):  # the textbook recursion, one sample at a time
        y = y + (1 - np.exp(-2 * np.pi * 20 * (ti - last) / 1e9)) * (xi - y)
        ref.append(y.copy())
        last = ti
    previous, parts = None, []
    for idx in np.split(np.arange(3000), [1, 57, 1000, 2999]):
        parts.append(lowpass(t[idx], x[idx], 20.0, previous))
        previous = (int(t[idx][-1]), parts[-1][-1])
    np.testing.assert_allclose(np.concatenate(parts), np.array(ref), atol=1e-9)
    assert np.std(np.diff(np.array(ref)[:, 0])) < 0.5 * np.std(np.diff(x[:, 0]))


def test_velocities_are_finite_differences_across_chunks():
    t = np.arange(100, dtype=np.int64) * 10 * MS
    q = np.sin(np.arange(100) / 10.0)[:, None] * np.ones((1, 2))
    whole = finite_difference(t, q, None)
    split = np.concatenate([finite_difference(t[:40], q[:40], None),
                            finite_difference(t[40:], q[40:], (int(t[39]), q[39]))])
    np.testing.assert_allclose(split, whole)
    np.testing.assert_allclose(whole[1:, 0], np.diff(q[:, 0]) / 0.01)


def test_perception_flags_do_not_depend_on_chunk_boundaries(delivered):
    seq, frames = delivered
    times = 1_000 * MS + seq * 33_333_333  # camera frames at their capture instants
    clock = EpisodeClock("e", 1_000 * MS + 5 * MS, 33_333_333, 390)

    def plan():
        return [StreamPlan("cam", "camera", "nearest", 22 * MS, 33_333_333,
                           StreamChecker("camera", camera=CameraChecks()))]

    def chunk(idx):
        return Chunk("cam", "camera", times[idx], times[idx], times[idx], seq[idx],
                     {"image": frames[idx]})

    # perception aligns and flags drops; computation runs the pixel checks on the chosen frames;
    # execution judges blur against the camera's recent frames, batches in order
    checks = {"cam": CameraChecks()}
    computation = Computation({"cam": ImageEncoding(encoding="raw")}, {"cam": frames.shape[1:]},
                              checks)
    whole = computation.process(Perception(plan()).process(
        RawBatch(clock, 0, 0, True, {"cam": chunk(slice(None))})))
    BlurJudge().apply(whole, checks)
    perception, judge, outs = Perception(plan()), BlurJudge(), []
    parts = np.array_split(np.arange(len(seq)), 11)
    for i, idx in enumerate(parts):
        outs.append(computation.process(perception.process(RawBatch(
            clock, i, int(times[idx[-1]]) + 1, i == len(parts) - 1, {"cam": chunk(idx)}))))
        judge.apply(outs[-1], checks)
    truth = injected_faults(FAULTS, 0, 400)
    for name in ("dropped", "frozen", "blurred", "overexposed"):
        joined = np.concatenate([o.streams["cam"].flags[name] for o in outs])
        np.testing.assert_array_equal(joined, whole.streams["cam"].flags[name], err_msg=name)
        if name != "dropped":  # the pixel checks found the frames the simulator spoiled
            shown = whole.streams["cam"]
            shown_seq = np.round((shown.capture_ns - 1_000 * MS) / 33_333_333).astype(int)
            expected = truth[name][shown_seq] & ~shown.missing
            np.testing.assert_array_equal(joined & ~shown.missing, expected, err_msg=name)
    on_grid = whole.streams["cam"]
    lost = np.flatnonzero(truth["dropped"][:390])
    assert on_grid.flags["dropped"][np.round((lost * 33_333_333 - 5 * MS) / 33_333_333)
                                    .astype(int)].all()
    assert on_grid.flags["dropped"].sum() == len(lost)


def _grid_batch(n, flags, missing):
    stream = StreamOnGrid(values={}, capture_ns=np.zeros(n, np.int64),
                          dt_ns=np.zeros(n, np.int64), missing=missing, flags=flags)
    return GridBatch(EpisodeClock("e", 0, 1, n), 0, True, 0, np.arange(n, dtype=np.int64),
                     {"cam": stream}, {}, {})


def test_efficiency_counts_each_lost_or_bad_tick_once():
    n = 100
    missing = np.zeros(n, bool)
    missing[:3] = True
    dropped = np.zeros(n, bool)
    dropped[[2, 10, 11]] = True  # tick 2 is missing too: counted once, as dropped
    blurred = np.zeros(n, bool)
    blurred[[10, 20, 21, 22]] = True  # tick 10 was never delivered: not a quality loss
    over = np.zeros(n, bool)
    over[[22, 30]] = True  # tick 22 is blurred and over-exposed: one bad tick
    tally = EpisodeTally()
    tally.add(_grid_batch(n, {"dropped": dropped, "blurred": blurred, "overexposed": over},
                          missing))
    a = tally.accounts(1.0, "success")
    assert a.delivered_samples == n - 5 and a.good_samples == n - 5 - 4
    assert a.loss_samples == {"sync_miss:cam": 2, "dropped:cam": 3, "blurred:cam": 3,
                              "overexposed:cam": 1}
    assert a.performance == pytest.approx(0.95) and a.quality == pytest.approx(91 / 95)


def test_quality_section_validates_names(tmp_path):
    config = load_station(SIM_CONFIG, ["quality.cameras.cam_high.blur_min_laplacian=20",
                                       "quality.signals.ft.max=50"])
    assert config.quality.for_camera("cam_high").blur_min_laplacian == 20
    assert config.quality.for_camera("cam_high").downscale == 4  # the rest stays default
    with pytest.raises(ConfigError, match=r"quality\.cameras names no camera: cam_nope"):
        load_station(SIM_CONFIG, ["quality.cameras.cam_nope.downscale=2"])
    with pytest.raises(ConfigError, match="blur_min_laplacian"):
        load_station(SIM_CONFIG, ["quality.camera.blur_min_laplacian=-1"])


def test_checksum_failures_and_ranges_reach_the_ticks():
    """A corrupt packet (counted by the driver, leaving a sequence gap) flags the tick whose
    window holds the sample after it; an out-of-range value flags its tick."""
    t = np.arange(300, dtype=np.int64) * MS  # a 1 kHz sensor
    seq = np.arange(300)
    keep = seq != 150  # packet 150 failed its checksum
    values = np.zeros((300, 3), np.float32)
    values[80, 1] = 99.0
    chunk = Chunk("ft", "sensor", t[keep], t[keep], t[keep], seq[keep], {"value": values[keep]},
                  checksum_failures=1)
    plan = StreamPlan("ft", "sensor", "interpolate", 3 * MS, 1 * MS,
                      StreamChecker("sensor", signal=SignalChecks(min=-10, max=10)))
    clock = EpisodeClock("e", 10 * MS, 10 * MS, 28)  # ticks at 10, 20, ... 280 ms
    out = Perception([plan]).process(RawBatch(clock, 0, 0, True, {"ft": chunk})).streams["ft"]
    np.testing.assert_array_equal(np.flatnonzero(out.flags["checksum"]), [15])  # (150, 160]
    np.testing.assert_array_equal(np.flatnonzero(out.flags["out_of_range"]), [7])  # (70, 80]
    assert out.scores["out_of_range_score"][7] == pytest.approx(89.0)
    assert out.scores["dropped_score"][14] == 1  # 150 ms is nearest to the tick at 150 ms
    assert out.flags["dropped"][14]  # and it was the sample that tick should have used


def test_samples_our_ring_refused_are_overflow_not_the_devices_drops():
    period = 33_333_333
    seq = np.array([0, 1, 2, 5, 6, 7, 8, 9])  # 3 and 4 missing
    times = 1_000 * MS + seq * period
    clock = EpisodeClock("e", 1_000 * MS, period, 10)

    def flags(overflow_seq):
        chunk = Chunk("cam", "camera", times, times, times, seq,
                      {"image": np.zeros((len(seq), 8, 8, 3), np.uint8)},
                      overflow=len(overflow_seq), overflow_seq=np.array(overflow_seq, np.int64))
        plan = StreamPlan("cam", "camera", "nearest", 22 * MS, period,
                          StreamChecker("camera", camera=CameraChecks()))
        out = Perception([plan]).process(RawBatch(clock, 0, 0, True, {"cam": chunk}))
        return out.streams["cam"].flags["dropped"], out.counters["cam"].dropped

    dropped, count = flags([])
    assert dropped[[3, 4]].all() and dropped.sum() == 2 and count == 2  # the device lost them
    dropped, count = flags([3, 4])
    assert not dropped.any() and count == 0  # our buffer refused them: overflow, not a drop
    dropped, count = flags([4])
    assert dropped[3] and dropped.sum() == 1 and count == 1
