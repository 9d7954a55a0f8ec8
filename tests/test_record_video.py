"""Video-coded cameras recorded by the real pipeline, read back with plain h5py and PyAV.

Each frame is stored once, as one packet, at the camera's own rate; the grid holds per tick the
index of the frame it shows. These tests record real sim episodes (both engines, both codecs)
and check the file against itself: the tick's capture time is its frame's, keyframes come every
`gop`, every packet decodes, and decoding from a keyframe gives the same frames as decoding all.
"""

from __future__ import annotations

import os
import signal

import cv2
import h5py
import numpy as np
import pytest

from collector.config import load_station
from collector.station import Station
from core.video import decode_run, keyframe_before
from schemas.layout import NO_FRAME, VIDEO_FIELDS
from tests.conftest import (
    SIM_CONFIG,
    partials,
    record_one,
    run_cli,
    start_recorder,
    wait_for_partial,
    wait_until,
)

CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")
GOP = 8
LONG_GOP = 600  # longer than any test episode: a keyframe after the first is a new video


def check_video_camera(f: h5py.File, camera: str, gop: int = GOP) -> np.ndarray:
    """Everything one video camera's datasets must hold; returns its per-tick frame index."""
    g = f[f"videos/{camera}"]
    n = g["packets"].shape[0]
    assert n > 0 and {g[k].shape[0] for k in VIDEO_FIELDS} == {n}  # one row per frame
    assert f"raw/{camera}" not in f  # its frame times are its video's
    capture = g["capture_ns"][:]
    assert (np.diff(capture) > 0).all() and (np.diff(g["seq"][:]) > 0).all()  # each frame once
    # every frame stored lies in the episode window the grid may show
    ts = f["timestamps"][:]
    fps = float(g.attrs["fps"])
    reach = int((0.5 / fps + 0.005) * 1e9)
    period = int(ts[1] - ts[0])
    assert capture[0] >= ts[0] - reach and capture[-1] < ts[-1] + period + reach

    # each tick points at the frame whose capture time the grid chose
    index = f[f"observations/images/{camera}"][:]
    assert index.dtype == np.int64 and len(index) == len(ts)
    shown = index != NO_FRAME
    assert (index[shown] < n).all()
    chosen = f[f"quality/{camera}/capture_ns"][:]
    missing = f[f"quality/{camera}/missing"][:]
    ok = shown & ~missing
    np.testing.assert_array_equal(capture[index[ok]], chosen[ok])
    # a missing tick shows its held frame, or the last stored before it when that one was
    # never stored (outside the window, or lost with its encoder)
    assert (capture[index[shown & missing]] <= chosen[shown & missing]).all()
    assert (np.diff(index[shown]) >= 0).all() and not (~shown[np.argmax(shown):]).any()

    keys = np.flatnonzero(g["keyframe"][:])
    np.testing.assert_array_equal(keys, np.arange(0, n, gop))
    packets = list(g["packets"][:])
    frames = decode_run(g.attrs, packets)  # every packet decodes, with PyAV alone
    height, width = int(g.attrs["height"]), int(g.attrs["width"])
    assert len(frames) == n and frames[0].shape == (height, width, 3)
    # random access: from the keyframe before the last frame, the same pixels
    start = keyframe_before(g["keyframe"][:], n - 1)
    np.testing.assert_array_equal(decode_run(g.attrs, packets[start:])[-1], frames[-1])
    return index


@pytest.mark.parametrize("codec", ["h264", "av1"])
def test_inline_video_episode_stores_each_frame_once(tmp_path, codec):
    summary = record_one(tmp_path, 1.0, f"pipeline.images.encoding={codec}",
                         f"pipeline.images.gop={GOP}")
    with h5py.File(summary.path, "r") as f:
        assert f.attrs["format_version"] == 2
        for camera in CAMERAS:
            check_video_camera(f, camera)
            assert f[f"videos/{camera}"].attrs["codec"] == codec


@pytest.mark.parametrize("codec", ["h264", pytest.param("av1", marks=pytest.mark.slow)])
def test_ray_video_episode_encodes_each_camera_in_order(tmp_path, ray_session, codec):
    summary = record_one(tmp_path, 1.5, f"pipeline.images.encoding={codec}",
                         f"pipeline.images.gop={GOP}", engine="ray")
    with h5py.File(summary.path, "r") as f:
        for camera in CAMERAS:
            check_video_camera(f, camera)


def test_a_camera_slower_than_the_grid_is_stored_once_per_frame(tmp_path):
    """10 fps under a 30 Hz grid: a third as many packets as ticks, each shown by several."""
    summary = record_one(tmp_path, 1.5, "pipeline.images.encoding=h264",
                         f"pipeline.images.gop={GOP}", "devices.cam_high.fps=10",
                         "pipeline.images.resize=[320, 240]")
    with h5py.File(summary.path, "r") as f:
        index = check_video_camera(f, "cam_high")
        n = f["videos/cam_high/packets"].shape[0]
        ticks = f["timestamps"].shape[0]
        assert n <= ticks // 3 + 2
        assert np.bincount(index[index >= 0]).max() >= 3  # ticks share a frame, not a copy
        assert (f["videos/cam_high"].attrs["width"], f["videos/cam_high"].attrs["height"]) \
            == (320, 240)


def test_one_camera_jpeg_the_others_h264(tmp_path):
    summary = record_one(tmp_path, 1.0, "pipeline.images.encoding=h264",
                         f"pipeline.images.gop={GOP}",
                         "pipeline.images.cameras={cam_high: {encoding: jpeg, quality: 80}}")
    with h5py.File(summary.path, "r") as f:
        jpeg = f["observations/images/cam_high"]
        assert "videos/cam_high" not in f and jpeg.attrs["encoding"] == "jpeg"
        assert jpeg.attrs["quality"] == 80 and len(jpeg) == f["timestamps"].shape[0]
        frame = cv2.imdecode(np.asarray(jpeg[len(jpeg) // 2], np.uint8), cv2.IMREAD_COLOR)
        assert frame.shape == (480, 640, 3)
        assert f["raw/cam_high/capture_ns"].shape[0] > 0  # a per-tick camera keeps its times
        for camera in CAMERAS[1:]:
            check_video_camera(f, camera)


def _flushed_packets(root) -> int:
    """Packets a SWMR reader sees in the newest partial file now (0 while it is created)."""
    try:
        with h5py.File(partials(root)[-1], "r", swmr=True, libver="latest") as f:
            return int(f["videos/cam_high/packets"].shape[0])
    except (OSError, KeyError, IndexError):
        return 0


def test_sigkill_leaves_packets_that_decode_and_ticks_that_point_at_them(tmp_path):
    proc = start_recorder(tmp_path, 1, 6.0, "--set", "pipeline.images.encoding=h264",
                          "--set", f"pipeline.images.gop={GOP}")
    try:
        wait_for_partial(proc, tmp_path)

        def flushed_a_gop() -> bool:
            assert proc.poll() is None, proc.communicate()
            return _flushed_packets(tmp_path) > 2 * GOP

        wait_until(flushed_a_gop, "the recorder flushes two groups of pictures")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    [partial] = partials(tmp_path)
    # What a kill guarantees is what `recover` keeps: rows past the last completed flush may
    # show in the partial's extents (HDF5 evicts metadata when it likes) with their
    # variable-length bytes never written, so the partial itself is not read row by row.
    recovered = run_cli("recover", str(partial.parent))
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    [episode] = list(partial.parent.glob("*.h5"))
    with h5py.File(episode, "r") as f:
        ticks = f["timestamps"].shape[0]
        for camera in CAMERAS:
            assert f"videos/{camera}" in f, recovered.stdout  # recover says what it dropped
            g = f[f"videos/{camera}"]
            n = min(g[k].shape[0] for k in VIDEO_FIELDS)
            assert n > GOP  # the recorder had flushed two groups of pictures before the kill
            assert len(decode_run(g.attrs, list(g["packets"][:n]))) == n
            # packets are written before the ticks of the same flush: no tick points past them
            index = f[f"observations/images/{camera}"][:ticks]
            assert index.max() < n


def _pid(ray_session, actor) -> int | None:
    """The actor's process id, None while Ray restarts it. A restarted actor keeps its actor
    id, and a killed one may still answer for a moment: only a new process proves the restart."""
    try:
        return ray_session.get(actor.__ray_call__.remote(lambda _: os.getpid()), timeout=5)
    except (ray_session.exceptions.RayActorError, ray_session.exceptions.GetTimeoutError):
        return None


@pytest.mark.slow
def test_a_killed_encoder_actor_loses_only_its_frames_and_restarts_at_a_keyframe(
        tmp_path, ray_session):
    config = load_station(SIM_CONFIG, [f"station.output_dir={tmp_path}", "engine.kind=ray",
                                       "episode.duration_s=6", "pipeline.images.encoding=h264",
                                       f"pipeline.images.gop={LONG_GOP}"])
    station = Station(config)
    try:
        victim = station.engine.encoders["cam_high"]

        def kill_mid_episode(run) -> None:
            if run.index == 12:  # read 12 of ~32: mid-episode
                before = _pid(ray_session, victim)
                ray_session.kill(victim, no_restart=False)  # a crash: Ray restarts it
                # wait for the restarted actor (a state, not a time): on a loaded host its
                # restart can outlast the episode, which would leave no frames after it
                wait_until(lambda: _pid(ray_session, victim) not in (None, before),
                           "the encoder restarts")

        summary = station.run_episode(station.begin_episode(), station.asked_to_end,
                                      kill_mid_episode)
        # how many frames of this episode the restarted encoder took (on a host too busy to
        # deliver a frame after the restart, none: then there is no second video to check)
        encoder = ray_session.get(victim.__ray_call__.remote(lambda actor: actor.stage))
        restarted = (encoder._next - encoder._base
                     if encoder._episode == summary.episode_id else 0)
        [after] = station.record(1)  # the restarted encoder serves the next episode
    finally:
        station.close()
    with h5py.File(summary.path, "r") as f:
        g = f["videos/cam_high"]
        n = g["packets"].shape[0]
        keys = np.flatnonzero(g["keyframe"][:])
        # the new encoder began a new video with its first frame: a keyframe the cadence would
        # not have placed (the gop is longer than the episode); its frames are the last stored
        expected = [0, n - restarted] if 0 < restarted < n else [0]
        assert keys.tolist() == expected, (keys, n, restarted)
        assert len(decode_run(g.attrs, list(g["packets"][:]))) == n  # every packet decodes
        index = f["observations/images/cam_high"][:]
        shown = index >= 0
        same = g["capture_ns"][:][index[shown]] == f["quality/cam_high/capture_ns"][:][shown]
        # a tick whose frame died with the encoder shows the frame before and is missing
        assert f["quality/cam_high/missing"][:][shown][~same].all()
        # those ticks are blamed on the encoder's crash, not on sync; a tick already missing
        # for another cause (a late frame on a loaded host) keeps its first cause: each lost
        # tick is counted once, so every such tick is under one of cam_high's causes
        losses = summary.accounts.loss_samples
        blamed = losses.get("crash:encoder-cam_high", 0)
        charged = sum(n for cause, n in losses.items() if cause.endswith(":cam_high"))
        assert blamed <= (~same).sum() <= blamed + charged
        assert blamed <= f["quality/cam_high/missing"][:].sum()
        for camera in CAMERAS[1:]:  # the other cameras' encoders never noticed
            check_video_camera(f, camera, gop=LONG_GOP)
    with h5py.File(after.path, "r") as f:
        check_video_camera(f, "cam_high", gop=LONG_GOP)
