"""`collector_device_up` is the driver's word (connected or not), never the pipeline's lag;
the lag is `collector_pipeline_lag_seconds`."""

from __future__ import annotations

import threading
import time

from collector.config import load_station
from collector.daemon.accounts import EMPTY
from collector.daemon.metrics import StationMetrics
from collector.station import Station
from schemas.api import Status
from tests.conftest import SIM_CONFIG
from tests.daemon_helpers import small_cameras

DEVICES = ("cam_high", "cam_left_wrist", "cam_right_wrist", "ft", "arm")
OLD_STALE_S = 0.5  # the last-sample age that used to mark a device down


def station(tmp_path, *extra: str) -> Station:
    return Station(load_station(SIM_CONFIG, [
        f"station.output_dir={tmp_path}", "engine.kind=inline", "episode.duration_s=1",
        *small_cameras(), *extra]))


def scrape(s: Station) -> dict[str, float]:
    status = Status(station_id="sim-01", session_id="t", state="recording", mode="auto",
                    paused=False, shutdown_requested=False, episodes={}, current_episode=None,
                    last_episode=None, devices=s.engine.health(), pipeline_lag_s=s.lag_s,
                    session=EMPTY)
    values = {}
    for line in StationMetrics().render(status).splitlines():
        if line.startswith(("collector_device_up", "collector_pipeline_lag_seconds")):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        tick.wait(0.05)


def test_a_lagging_pipeline_leaves_every_device_up(tmp_path):
    # an episode far longer than the wait below: its first chunk, however late a loaded host
    # makes it, is never the episode's last (whose due time is the episode's end)
    s = station(tmp_path, "episode.duration_s=60")
    try:
        run = s.begin_episode()
        # The consumer holds off: no read until the first chunk is well overdue.
        due_ns = run.clock.start_ns + int(s.config.episode.chunk_ms * 1e6)
        wait_until(lambda: time.monotonic_ns() > due_ns + 2 * OLD_STALE_S * 1e9)
        health = s.engine.health()
        assert all(h["last_sample_age_s"] > OLD_STALE_S for h in health.values()), health
        s.step_episode(run)
        assert s.lag_s > OLD_STALE_S
        shown = scrape(s)
        for device in DEVICES:
            assert shown[f'collector_device_up{{device="{device}"}}'] == 1.0, shown
        assert shown["collector_pipeline_lag_seconds"] > OLD_STALE_S
        s.cut_short(run, "the test")
        while not s.step_episode(run):
            pass
        s.end_episode(run)
    finally:
        s.close()


def test_a_disconnected_device_is_down_and_only_it(tmp_path):
    s = station(tmp_path, "devices.cam_high.faults.disconnect_at_s=0.5",
                "devices.cam_high.faults.disconnect_for_s=600")
    try:
        wait_until(lambda: not s.engine.health()["cam_high"]["connected"])
        shown = scrape(s)
        assert shown['collector_device_up{device="cam_high"}'] == 0.0
        for device in DEVICES[1:]:
            assert shown[f'collector_device_up{{device="{device}"}}'] == 1.0, shown
        assert shown["collector_pipeline_lag_seconds"] == 0.0  # not recording: no lag
    finally:
        s.close()
