"""The real OpenCV driver reads a real video file written with cv2.VideoWriter."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from drivers.opencv_camera import OpenCVCamera
from drivers.sim.camera import read_counter, write_counter
from schemas.devices import OpenCVCameraConfig
from tests.conftest import wait_until

W, H = 480, 240  # the frame counter needs 384 px of width


def write_video(path, frames: int, fps: float = 30.0) -> None:
    """Frames with a readable counter and a colored block whose color says R from B."""
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert out.isOpened()
    for i in range(frames):
        bgr = np.full((H, W, 3), 90, np.uint8)
        bgr[100:200, 50:150] = (255, 0, 0)  # pure blue in BGR
        write_counter(bgr, i)
        out.write(bgr)
    out.release()


def collect(camera: OpenCVCamera, want: int, timeout_s: float = 20.0):
    chunks, got = [], 0
    deadline = time.monotonic() + timeout_s
    while got < want and time.monotonic() < deadline:
        time.sleep(0.05)
        chunk = camera.read()
        chunks.append(chunk)
        got += len(chunk)
    return chunks


def test_video_file_frames_arrive_in_order_as_rgb(tmp_path):
    video = tmp_path / "clip.avi"
    write_video(video, 20)
    # the file's own rate: it plays at its frame times, numbered in periods of `fps`
    config = OpenCVCameraConfig(name="cam", type="opencv_camera", source=str(video),
                                width=W, height=H, fps=30)
    camera = OpenCVCamera(config)
    with camera:
        chunks = collect(camera, 20)
    frames = np.concatenate([c.fields["image"] for c in chunks])[:20]
    seq = np.concatenate([c.seq for c in chunks])[:20]
    assert frames.shape == (20, H, W, 3)
    assert [read_counter(f) for f in frames] == list(range(20)) == seq.tolist()
    block = frames[0, 120:180, 70:130].reshape(-1, 3).mean(axis=0)
    assert block[2] > 200 and block[0] < 50  # RGB order: blue lands in the last channel


LEFT_OUT = {3, 7, 8, 15}  # frames of a 20-frame file a camera dropped


def write_with_gaps(path, frames: int, left_out: set[int], codec: str) -> list[int]:
    """Frames with a readable counter, those in `left_out` not written: each frame's
    presentation time is its index at rate 30 (PyAV), so the ones left out leave their gap in
    time, as a camera that dropped them would. Returns the indices written."""
    from fractions import Fraction

    import av

    written = [i for i in range(frames) if i not in left_out]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height = W, H
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in written:
            bgr = np.full((H, W, 3), 90, np.uint8)
            write_counter(bgr, i)
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return written


@pytest.mark.parametrize(("name", "codec", "passthrough"), [
    ("gaps.mkv", "mjpeg", False), ("gaps.mp4", "libx264", False), ("gaps.avi", "mjpeg", False),
    ("gaps.avi", "mjpeg", True)])
def test_a_file_with_frames_left_out_gives_exactly_those_sequence_gaps(tmp_path, name, codec,
                                                                        passthrough):
    """Numbered by its frame times, each frame of the file gets its original index: the frames
    left out are gaps in the sequence, which the pipeline flags `dropped`. The file plays at
    those times (a frame after a gap comes that much later), which are its device clock; played
    again after it ends (a reconnect), the numbers go on from the last one, with the same gaps."""
    pytest.importorskip("av")
    from core.codec import JPEG_FIELD, JPEG_SIZE_FIELD

    video = tmp_path / name
    written = write_with_gaps(video, 20, LEFT_OUT, codec)
    config = OpenCVCameraConfig(name="cam", type="opencv_camera", source=str(video), width=W,
                                height=H, fps=30, passthrough="jpeg" if passthrough else None)
    camera = OpenCVCamera(config, stores_jpeg=passthrough)
    opened = time.monotonic_ns()
    with camera:
        chunks = collect(camera, len(written) + 4)
    seq = np.concatenate([c.seq for c in chunks])
    arrival = np.concatenate([c.arrival_ns for c in chunks])
    device = np.concatenate([c.device_ns for c in chunks])
    if passthrough:
        jpeg = np.concatenate([c.fields[JPEG_FIELD] for c in chunks])
        size = np.concatenate([c.fields[JPEG_SIZE_FIELD] for c in chunks])[:, 0]
        frames = [cv2.imdecode(b[:n], cv2.IMREAD_COLOR) for b, n in zip(jpeg, size, strict=True)]
    else:
        frames = list(np.concatenate([c.fields["image"] for c in chunks]))
    n = len(written)
    assert [read_counter(f) for f in frames[:n]] == written == seq[:n].tolist()
    assert seq[n:n + 4].tolist() == [20, 21, 22, 24]  # played again: frame 3 is missing again
    # no frame came before its time: the last one plays 19 periods after the first, not 15
    plays = np.array(written) * 33_333_333
    assert np.abs(device[:n] - plays).max() <= 1_000_000  # (.mkv keeps times to the ms)
    assert device[n] == 0  # played again: its clock starts over (the clock fit restarts)
    due = plays - 1_000_000
    assert np.all(arrival[:n] - opened >= due), (arrival[:n] - opened - due).min()


def test_rotation_and_a_capture_that_delivers_rgb(tmp_path):
    """`delivers: rgb` takes the capture's channels as they come: a file read by OpenCV gives
    BGR, so told it is RGB, blue stays first - the option names what the capture hands out."""
    video = tmp_path / "clip.avi"
    write_video(video, 3)
    config = OpenCVCameraConfig(name="cam", type="opencv_camera", source=str(video), width=W,
                                height=H, fps=100, rotation=90, delivers="rgb")
    camera = OpenCVCamera(config)
    assert camera.describe().fields["image"].shape == (W, H, 3)
    with camera:
        frames = np.concatenate([c.fields["image"] for c in collect(camera, 1)])
    first = frames[0]
    assert first.shape == (W, H, 3)
    restored = cv2.rotate(first, cv2.ROTATE_90_COUNTERCLOCKWISE)
    assert read_counter(restored) == 0
    assert restored[120:180, 70:130].reshape(-1, 3).mean(axis=0)[0] > 200  # as delivered


def test_color_order_is_refused_with_its_replacement_named():
    """The old `color_order: bgr` kept BGR frames under an RGB label (red and blue swapped in
    every stored frame); a config naming it gets one line saying what to write instead."""
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="delivers: bgr"):
        OpenCVCameraConfig(name="cam", type="opencv_camera", source=0, width=W, height=H,
                           fps=30, color_order="bgr")


def test_missing_source_is_a_clear_device_error(tmp_path):
    import pytest

    from collector.errors import DeviceError

    config = OpenCVCameraConfig(name="cam", type="opencv_camera",
                                source=str(tmp_path / "nope.mp4"))
    with pytest.raises(DeviceError, match="cannot open camera source"):
        OpenCVCamera(config).open()


def test_camera_that_goes_away_reconnects_and_accounts_the_gap(tmp_path):
    """The source vanishes after its last frame and comes back later: the driver retries with
    backoff, resumes, and reports the time in between as lost."""
    video = tmp_path / "clip.avi"
    write_video(video, 15)
    away = tmp_path / "away.avi"
    config = OpenCVCameraConfig(name="cam", type="opencv_camera", source=str(video),
                                width=W, height=H, fps=30)
    camera = OpenCVCamera(config)
    chunks = []

    def read_until(done, what: str) -> None:
        wait_until(lambda: chunks.append(camera.read()) or done(), what, poll_s=0.05)

    with camera:
        unplugged = time.monotonic()
        video.rename(away)  # the open capture keeps playing its 15 frames (0.5 s), then fails
        read_until(lambda: chunks[-1].lost_s > 0, "the driver noticing the source is gone")
        noticed = time.monotonic()
        time.sleep(0.5)  # the outage this test makes (not a wait for a result)
        away.rename(video)  # plugged back in
        back = time.monotonic()
        read_until(lambda: sum(len(c) for c in chunks) >= 20, "frames after the reconnect")
        resumed = time.monotonic()
    seq = np.concatenate([c.seq for c in chunks])
    frames = np.concatenate([c.fields["image"] for c in chunks])
    counters = [read_counter(f) for f in frames]
    assert counters[:15] == list(range(15)) and counters[15:20] == list(range(5))
    assert np.all(np.diff(seq) == 1)  # the device's sequence continues across the reconnect
    # the time lost is the time it was down: all of the outage it had noticed, at most what
    # passed from unplugging to frames again (bounds from this test's own clock, however slow)
    lost_s = sum(c.lost_s for c in chunks)
    assert back - noticed <= lost_s <= resumed - unplugged, (lost_s, back - noticed)


def test_http_mjpeg_stream_url():
    """A network camera: multipart MJPEG over HTTP, served from a thread on 127.0.0.1."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class MJPEG(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for i in range(40):
                bgr = np.full((H, W, 3), 90, np.uint8)
                write_counter(bgr, i)
                jpg = cv2.imencode(".jpg", bgr)[1].tobytes()
                try:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return
                time.sleep(0.02)

    server = ThreadingHTTPServer(("127.0.0.1", 0), MJPEG)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg"
        camera = OpenCVCamera(OpenCVCameraConfig(name="net", type="opencv_camera", source=url,
                                                 width=W, height=H, fps=50, warmup_frames=0))
        with camera:
            chunks = collect(camera, 20)
    finally:
        server.shutdown()
    frames = np.concatenate([c.fields["image"] for c in chunks])[:20]
    counters = [read_counter(f) for f in frames]
    assert len(counters) == 20 and counters[0] <= 5
    assert counters == list(range(counters[0], counters[0] + 20))  # every frame, in order
    # FFmpeg stamps this stream at a guessed 25 fps (40 ms steps) while its frames come every
    # 20 ms: steps that look like a missed frame each at 50 fps, and are none
    seq = np.concatenate([c.seq for c in chunks])[:20]
    assert np.all(np.diff(seq) == 1), seq


@pytest.mark.parametrize("width,height", [(1, 1), (7, 5), (23, 17), (100, 3), (320, 240),
                                          (383, 16), (641, 479), (1920, 1080), (8192, 1),
                                          (1, 8192)])
def test_sim_camera_delivers_every_size_the_schema_accepts(width, height):
    """Its reader thread renders and stamps frames of any accepted size (a 320 px frame once
    crashed it: the counter was wider than the frame), and the counter reads back."""
    from drivers.sim.camera import SimCamera, counter_layout
    from drivers.sim.world import SimWorld
    from schemas.devices import SimCameraConfig

    config = SimCameraConfig(name="cam", type="sim_camera", width=width, height=height, fps=200)
    camera = SimCamera(config, SimWorld())
    with camera:
        chunks = collect(camera, 5)  # raises the reader thread's error, if it had one
    frames = np.concatenate([c.fields["image"] for c in chunks])
    seq = np.concatenate([c.seq for c in chunks])
    assert len(frames) >= 5 and frames.shape[1:] == (height, width, 3)
    bits = counter_layout(width, height)[2]
    assert [read_counter(f) for f in frames] == (seq % 2**bits).tolist()
