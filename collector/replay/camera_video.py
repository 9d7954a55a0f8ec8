"""Replay one camera to a video file: its stored packets remuxed as they are (h264/av1), or its
per-tick images re-encoded (jpeg/png/raw cameras).

A video-coded camera's packets go into the container unchanged, so the file costs what the
packets cost and every frame decodes to exactly what the episode reader decodes. FFmpeg's mp4
(and mkv) muxer takes the in-band Annex-B h264 and AV1 OBU packets without extradata: it builds
the avcC/av1C box from the first keyframe's headers itself.

Timing: each frame's pts is its capture time (host clock, from the episode's first shown frame)
at 1/90000 s, MP4's usual video timescale, so a camera that dropped or delayed frames plays with
the gaps it had instead of a constant rate that would make the video shorter than the episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from collector.replay.source import ReplayError, TickRange, control_hz
from collector.storage.reader import Episode
from collector.storage.videos import VideoFrames, VideoTicks
from core.video import VideoEncoder, keyframe_before
from schemas.layout import NO_FRAME
from schemas.station import ImageEncoding

TIME_BASE = Fraction(1, 90_000)
CONTAINERS = (".mp4", ".mkv")  # the two whose remux is tested frame for frame, h264 and av1


class UnknownCamera(ReplayError):
    """`--camera` names no camera of the episode: a usage error, so argparse's exit code."""

    exit_code = 2


@dataclass(frozen=True)
class CameraVideo:
    """What was written: frames (remuxed packets or re-encoded images), how, and over what."""

    frames: int
    remuxed: bool
    why: str  # why it was re-encoded ("" when remuxed)
    first: int  # the first frame (remux) or tick (re-encode) written
    seconds: float  # the video's duration

    def describe(self) -> str:
        span = f"{self.seconds:.2f} s"
        if self.remuxed:
            return f"remuxed {self.frames} packets (no re-encode), frames from {self.first}, {span}"
        return f"re-encoded {self.frames} frames ({self.why}), ticks from {self.first}, {span}"


def write_camera_video(episode: Episode, camera: str, ticks: TickRange,
                       out: str | Path) -> CameraVideo:
    """One camera's frames over `ticks` as a video file (.mp4 or .mkv)."""
    out = Path(out)
    if camera not in episode.cameras:
        raise UnknownCamera(f"--camera {camera}: no such camera in {episode.path}; it has "
                            f"{', '.join(episode.cameras) or 'none'}")
    if out.suffix.lower() not in CONTAINERS:
        raise ReplayError(f"{out}: a camera's video is written as .mp4 or .mkv; name it so")
    if not out.parent.is_dir():
        raise ReplayError(f"{out}: folder {out.parent} does not exist")
    frames = episode.frames(camera)
    if isinstance(frames, VideoFrames):
        return _remux(episode, frames, ticks, out)
    return reencode_ticks(episode, camera, ticks, out)


def frames_in(episode: Episode, video: VideoFrames, ticks: TickRange) -> tuple[int, int]:
    """Frames [start, stop) to remux for `ticks`: every stored frame for the whole episode;
    for part of it, from the keyframe before the first frame shown (a packet decodes only after
    its keyframe) to the last frame shown."""
    if ticks.first == 0 and ticks.stop >= len(episode):
        return 0, len(video)
    images = episode.images(video.camera)
    assert isinstance(images, VideoTicks)  # a video camera's ticks point into its frames
    shown = images.frame_index[ticks.slice]
    shown = shown[(shown != NO_FRAME) & (shown < len(video))]
    if not shown.size:
        raise ReplayError(f"camera {video.camera!r} delivered no frame in ticks "
                          f"{ticks.first}..{ticks.stop - 1}; widen --start/--end")
    return keyframe_before(video.keyframe, int(shown.min())), int(shown.max()) + 1


def frame_pts(capture_ns: np.ndarray) -> np.ndarray:
    """Capture times -> pts at TIME_BASE from the first, strictly increasing as a muxer needs
    (two frames stamped within one 1/90000 s tick move apart by one)."""
    pts = (capture_ns - capture_ns[0]) * TIME_BASE.denominator // 1_000_000_000
    steps = np.arange(pts.size, dtype=np.int64)
    return np.maximum.accumulate(pts - steps) + steps


def mux_packets(out: Path, codec: str, width: int, height: int, pix_fmt: str,
                packets: list[np.ndarray], keyframe: np.ndarray, pts: np.ndarray,
                last_duration: int) -> None:
    """Write encoded packets into a container as they are, one per frame, at `pts`."""
    try:
        with av.open(str(out), "w") as container:
            stream = container.add_stream(codec)
            assert isinstance(stream, av.VideoStream)  # a video codec's name gives a video stream
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.time_base = TIME_BASE
            durations = np.append(np.diff(pts), last_duration)
            for data, key, at, duration in zip(packets, keyframe, pts, durations, strict=True):
                packet = av.Packet(np.asarray(data, np.uint8).tobytes())
                packet.pts = packet.dts = int(at)
                packet.duration = int(duration)
                packet.time_base = TIME_BASE
                packet.is_keyframe = bool(key)
                packet.stream = stream
                container.mux(packet)
    except av.error.FFmpegError as exc:
        out.unlink(missing_ok=True)  # half a file would look like a video
        raise ReplayError(f"{out}: could not write the {codec} packets ({exc})") from None


def _remux(episode: Episode, video: VideoFrames, ticks: TickRange, out: Path) -> CameraVideo:
    start, stop = frames_in(episode, video, ticks)
    if stop <= start:
        raise ReplayError(f"camera {video.camera!r} has no stored frames to write")
    capture = video.times()["capture_ns"][start:stop]
    pts = frame_pts(capture)
    period = round(TIME_BASE.denominator / video.fps) if video.fps > 0 else 1
    height, width, _ = video.shape
    mux_packets(out, video.encoding, width, height, str(video.attrs["pix_fmt"]),
                list(video.packets(start, stop)), video.keyframe[start:stop], pts, period)
    return CameraVideo(stop - start, True, "", start, float((pts[-1] + period) * TIME_BASE))


def reencode_ticks(episode: Episode, camera: str, ticks: TickRange, out: Path) -> CameraVideo:
    """Each tick's image encoded with h264 at the tick's time, then muxed like a stored video:
    how a per-tick camera (jpeg/png/raw) is written, and any camera that must show one frame
    per tick (the LeRobot export)."""
    images = episode.images(camera)
    height, width, _ = images.shape
    height, width = height // 2 * 2, width // 2 * 2  # yuv420p wants even sizes
    hz = control_hz(episode)
    spec = ImageEncoding(encoding="h264")
    encoder = VideoEncoder(spec, width, height, hz)
    times = episode.timestamps[ticks.slice].astype(np.int64)
    parts = []
    for first in range(ticks.first, ticks.stop, 32):  # a bounded run of decoded frames at once
        stop = min(first + 32, ticks.stop)
        block = np.stack([images[t][:height, :width] for t in range(first, stop)])
        at = times[first - ticks.first:stop - ticks.first]
        parts.append(encoder.add(block, at, at, at))
    parts.append(encoder.finish())
    packets = [p for part in parts for p in part.packets]
    keyframe = np.concatenate([part.keyframe for part in parts])
    pts = frame_pts(times)
    period = round(TIME_BASE.denominator / hz)
    mux_packets(out, "h264", width, height, spec.pix_fmt, packets, keyframe, pts, period)
    why = f"{camera} is stored as {images.encoding}, one image per tick"
    return CameraVideo(len(packets), False, why, ticks.first,
                       float((pts[-1] + period) * TIME_BASE))
