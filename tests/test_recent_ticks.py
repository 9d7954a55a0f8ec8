"""The live figures of the last seconds (collector/recent.py): each stream's |dt| p99 and the
quality flags raised over its ticks written in the window, on both engines, checked against
the episode file read back with plain h5py; and the window's rings stay their size.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from collector.batch import EpisodeClock, GridBatch, StreamOnGrid
from collector.config import load_station
from collector.quality import PERFORMANCE_CHECKS
from collector.recent import RECENT_S, RecentTicks, digest
from collector.station import Station
from tests.conftest import SIM_CONFIG
from tests.daemon_helpers import small_cameras

WINDOW_NS = int(RECENT_S * 1e9)


def file_ticks(path: str) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """The grid times, and per stream its dt_ns, missing and quality flags, as stored."""
    with h5py.File(path, "r") as f:
        times = f["timestamps"][:]
        streams = {}
        for name, group in f["quality"].items():
            streams[name] = {k: group[k][:] for k in group
                             if k in ("dt_ns", "missing") or group[k].dtype == bool}
    return times, streams


def expected(times: np.ndarray, stored: dict[str, np.ndarray], since_ns: int) -> tuple:
    """(ticks, |dt| p99 in ms, flags) over the stored ticks at or after `since_ns`."""
    recent = (times >= since_ns) & ~stored["missing"]
    p99 = float(np.percentile(stored["dt_ns"][recent], 99)) / 1e6 if recent.any() else None
    flags = {k: int((v & recent).sum()) for k, v in stored.items()
             if k not in ("dt_ns", "missing", *PERFORMANCE_CHECKS)}
    return int(recent.sum()), p99, flags


@pytest.mark.parametrize("engine", [
    "inline", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])])
def test_recent_figures_are_the_written_ticks(tmp_path, engine, request):
    if engine == "ray":
        request.getfixturevalue("ray_session")
    # frames the checks flag (overexposed, frozen, blurred), and jitter that spreads the dt
    faults = {"overexposed_rate": 0.2, "frozen_rate": 0.1, "blur_rate": 0.1, "jitter_ms": 4}
    station = Station(load_station(SIM_CONFIG, [
        f"station.output_dir={tmp_path}", f"engine.kind={engine}", "episode.duration_s=2",
        *small_cameras(),
        *(f"devices.cam_left_wrist.faults.{k}={v}" for k, v in faults.items())]))
    try:
        run = station.begin_episode()
        while not station.step_episode(run):
            pass
        summary = station.end_episode(run)
        end = run.clock.end_ns
        # judged at chosen instants on the station's clock, not whenever the test got here
        whole = station.engine.recent_ticks(end)
        part = station.engine.recent_ticks(run.clock.start_ns + WINDOW_NS + 1_000_000_000)
        after = station.engine.recent_ticks(end + WINDOW_NS + 1)
    finally:
        station.close()

    times, stored = file_ticks(summary.path)
    assert set(whole) == set(stored)
    for name, figures in whole.items():
        ticks, p99, flags = expected(times, stored[name], end - WINDOW_NS)
        assert figures.window_s == RECENT_S
        assert figures.ticks == ticks > 0, name
        assert figures.dt_p99_ms == pytest.approx(p99), name
        assert figures.flagged == flags, name
    assert sum(whole["cam_left_wrist"].flagged.values()) > 0  # the injected faults were seen

    # a window that starts 1 s into the episode holds only the ticks from there on
    for name, figures in part.items():
        ticks, p99, flags = expected(times, stored[name], run.clock.start_ns + 1_000_000_000)
        assert (figures.ticks, figures.flagged) == (ticks, flags), name
        assert figures.dt_p99_ms == pytest.approx(p99), name
        assert 0 < figures.ticks < whole[name].ticks
    # once the window has passed the episode: nothing recent, no figure
    assert all(f.ticks == 0 and f.dt_p99_ms is None and not any(f.flagged.values())
               for f in after.values())


def test_the_window_keeps_its_size_over_a_long_run():
    """An hour of 30 Hz ticks in batches of 3: each ring holds the window's ticks, not the
    hour's, and the figures are those of the last seconds."""
    period = 33_333_333
    clock = EpisodeClock("long", 0, period, 30 * 3600)
    rng = np.random.default_rng(7)
    recent = RecentTicks()
    batches = 30 * 3600 // 3
    dt = rng.integers(0, 15_000_000, size=batches * 3)
    flag = rng.random(batches * 3) < 0.05
    missing = rng.random(batches * 3) < 0.02
    for b in range(batches):
        ticks = slice(3 * b, 3 * b + 3)
        stream = StreamOnGrid(values={}, capture_ns=np.zeros(3, np.int64), dt_ns=dt[ticks],
                              missing=missing[ticks], flags={"dropped": missing[ticks],
                                                             "frozen": flag[ticks]})
        recent.add([digest(GridBatch(clock=clock, index=b, final=False, first_tick=3 * b,
                                     timestamps=clock.times(3 * b, 3 * b + 3),
                                     streams={"cam": stream}, raw={}, counters={}))])
    assert recent.held() == {"cam": int(RECENT_S * 30) + 1}  # the window at 30 Hz, one spare
    now = clock.times(batches * 3 - 1, batches * 3)[0]
    [figures] = recent.view(int(now)).values()
    times = clock.times(0, batches * 3)
    inside = (times >= now - WINDOW_NS) & ~missing
    assert figures.ticks == int(inside.sum())
    assert figures.dt_p99_ms == pytest.approx(np.percentile(dt[inside], 99) / 1e6)
    assert figures.flagged == {"frozen": int((flag & inside).sum())}  # drops are performance
