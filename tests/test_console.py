"""The operator page's parts without a browser: the preview tap on a real photograph, the alarms
judged from real status bodies, and a page that stops reading being dropped while the others
keep their stream. (The page itself, in Chromium against `collector run`: test_console_page.)
"""

from __future__ import annotations

import asyncio
import time

import cv2
import numpy as np
import pytest
import skimage.data

from collector.config import load_station
from collector.daemon.alarms import FLAGGED_ALARM, LAG_ALARM_S, AlarmBook, judge
from collector.daemon.console import QUEUE_SNAPSHOTS, ConsoleSource, EventHub
from collector.daemon.previews import PreviewStore
from collector.efficiency import combine
from collector.previews import PREVIEW_HZ, PREVIEW_WIDTH, PreviewTap
from collector.station import Station
from schemas.api import LastEpisode, Status
from schemas.episode import EfficiencyAccounts
from tests.conftest import SIM_CONFIG
from tests.daemon_helpers import CAMERAS, small_cameras

SECOND = 1_000_000_000


def status(devices: dict | None = None, lag_s: float = 0.0,
           last: LastEpisode | None = None) -> Status:
    return Status(station_id="sim-01", session_id="s", state="idle", mode="manual",
                  paused=False, shutdown_requested=False, episodes={}, current_episode=None,
                  last_episode=last, devices=devices or {}, pipeline_lag_s=lag_s,
                  session=combine([]))


def episode(flagged: int, delivered: int = 1000, discarded: int = 0) -> LastEpisode:
    good = delivered - flagged - discarded
    losses = {"blur:cam_high": flagged, "truncated": discarded}
    accounts = EfficiencyAccounts(
        scheduled_s=10, recording_s=10, expected_samples=delivered, delivered_samples=delivered,
        good_samples=good, availability=1, performance=1, quality=good / delivered,
        efficiency=good / delivered, loss_samples={k: v for k, v in losses.items() if v})
    return LastEpisode(episode_id="sim-01-e1", outcome="truncated" if discarded else "success",
                       path="/x/sim-01-e1.h5", accounts=accounts)


def test_preview_tap_only_when_asked_and_at_its_rate():
    photo = skimage.data.astronaut()  # 512 x 512 RGB
    tap = PreviewTap()
    t0 = 10 * SECOND
    assert not tap.due("cam", t0)  # nobody asked: a read costs one comparison
    assert tap.collect(t0) == {}
    assert tap.due("cam", t0)
    tap.take("cam", photo, arrival_ns=t0 - 5, now_ns=t0)
    assert not tap.due("cam", t0 + SECOND // 10)  # at most PREVIEW_HZ per camera
    assert tap.due("cam", t0 + int(SECOND / PREVIEW_HZ))
    [(camera, shot)] = tap.collect(t0 + 1).items()
    assert camera == "cam" and shot.seq == 1 and (shot.width, shot.height) == (320, 320)
    picture = cv2.imdecode(np.frombuffer(shot.jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert picture.shape == (320, 320, 3) == (shot.height, PREVIEW_WIDTH, 3)
    small = cv2.resize(photo, (320, 320), interpolation=cv2.INTER_AREA)
    assert np.abs(picture.astype(int) - small).mean() < 6  # the photograph, in its colours
    assert tap.collect(t0 + 2) == {}  # each preview is handed out once
    assert not tap.due("cam", t0 + 10 * SECOND)  # nobody asked for 10 s: stopped


@pytest.mark.parametrize("engine", [
    "inline", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])])
def test_station_previews_between_and_during_episodes(tmp_path, engine, request):
    """The tap in Capture, through either engine: nothing until asked; then each camera's
    newest frame between episodes (the discard path) and while recording (the read path)."""
    if engine == "ray":
        request.getfixturevalue("ray_session")
    station = Station(load_station(SIM_CONFIG, [
        f"station.output_dir={tmp_path}", f"engine.kind={engine}", "episode.duration_s=3",
        *small_cameras()]))
    try:
        station.discard()
        assert station.previews() == {}  # nobody had asked: no preview was taken
        idle: dict = {}
        deadline = time.monotonic() + 60  # a guard: the cameras deliver 30 frames a second
        while set(idle) != set(CAMERAS) and time.monotonic() < deadline:
            station.discard()
            idle.update(station.previews())
            time.sleep(0.05)  # poll as the daemon's idle loop does, between discards
        assert set(idle) == set(CAMERAS)
        run = station.begin_episode()
        recording: dict = {}
        while not station.step_episode(run):
            recording.update(station.previews())
        station.end_episode(run)
        assert set(recording) == set(CAMERAS)
        for camera in CAMERAS:
            assert recording[camera].seq > idle[camera].seq
            assert (recording[camera].width, recording[camera].height) == (320, 80)  # 384x96
            picture = cv2.imdecode(np.frombuffer(recording[camera].jpeg, np.uint8),
                                   cv2.IMREAD_COLOR)
            assert picture.shape == (80, 320, 3) and picture.std() > 5  # a scene, not blank
    finally:
        station.close()


def test_alarms_from_status():
    down = {"cam_high": {"connected": False, "disconnected_s": 3.2},
            "ft": {"connected": True}}
    found = judge(status(down, lag_s=LAG_ALARM_S * 2), free_gb=1.5, guard_gb=2)
    assert set(found) == {"device:cam_high", "disk", "lag"}
    assert "cam_high is disconnected" in found["device:cam_high"][1]
    assert "1.50 GB is below the guard storage.min_free_gb=2" in found["disk"][1]
    assert judge(status({"ft": {"connected": True}}), free_gb=50, guard_gb=2) == {}

    flagged = int(1000 * FLAGGED_ALARM) + 50
    found = judge(status(last=episode(flagged)), free_gb=50, guard_gb=2)
    assert list(found) == ["quality:sim-01-e1"]
    assert "15% of its samples flagged" in found["quality:sim-01-e1"][1]
    assert "blur:cam_high" in found["quality:sim-01-e1"][1]
    # an operator's stop (truncated: every sample discarded) is not a quality alarm
    assert judge(status(last=episode(0, discarded=1000)), free_gb=50, guard_gb=2) == {}


def test_alarm_book_keeps_what_cleared():
    book = AlarmBook()
    book.update(status({"cam_high": {"connected": False}}), 50, 2, now=100.0)
    assert [a["key"] for a in book.view()["active"]] == ["device:cam_high"]
    book.update(status({"cam_high": {"connected": True}}), 50, 2, now=104.0)
    view = book.view()
    assert view["active"] == []
    [cleared] = view["cleared"]
    assert (cleared["raised_at"], cleared["cleared_at"]) == (100.0, 104.0)


def test_a_page_that_stops_reading_is_dropped():
    previews = PreviewStore()
    hub = EventHub(ConsoleSource(status, previews, list, lambda: 50.0, 2.0, "pick_place"))

    async def run() -> tuple[int, int]:
        reader, stalled = hub.join(), hub.join()
        assert hub.pages == {reader, stalled} and previews.due(1e9)
        got = 0
        while stalled in hub.pages:  # ends: the stalled page's queue fills in QUEUE_SNAPSHOTS
            await reader.queue.get()
            got += 1
        hub.leave(reader)
        return got, stalled.queue.qsize()

    got, left = asyncio.run(run())
    assert got >= QUEUE_SNAPSHOTS  # the reader got every snapshot meanwhile
    assert hub.dropped == 1 and left == 1  # the stalled page gets only its end
    assert not previews.due(1e9)  # no page: no previews taken
