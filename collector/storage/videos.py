"""A video-coded camera's frames read back (format 2): by frame, by grid tick, and checked.

Each frame is stored once, as one packet in `/videos/<camera>/packets`; a packet decodes only
after the keyframe before it and every packet between. So `VideoFrames[i]` starts a decoder at
`keyframe_before(i)` unless the one it already has is on the way to frame i (sequential reads
then cost one packet each), and iteration runs one decoder over the whole video.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av
import h5py
import numpy as np

from collector.errors import EpisodeFileError
from core.video import VideoDecoder, keyframe_before
from schemas.layout import NO_FRAME, VIDEO_CHUNK, VIDEO_CRC, VIDEO_FIELDS

VIDEO_TIMES = ("arrival_ns", "capture_ns", "device_ns", "seq")  # a frame's times, as /raw's


def video_length(group: h5py.Group) -> int:
    """Frames every dataset of the video holds: a file being written (SWMR) can show one
    dataset grown before the writer's next flush has grown the others."""
    return int(min(group[name].shape[0] for name in (*VIDEO_FIELDS, VIDEO_CRC) if name in group))


def read_only(frame: np.ndarray) -> np.ndarray:
    frame.flags.writeable = False  # kept for the next read: a caller must copy to draw on it
    return frame


class VideoFrames:
    """Every frame one video-coded camera delivered in the episode, once each, in capture order.

    `len()`; `[i]` decodes frame i (seeking to its keyframe); iterating decodes each frame
    once. Frames are RGB uint8 (H, W, 3), read-only (the last one is kept for the next read)."""

    def __init__(self, group: h5py.Group, camera: str, frames: int | None = None):
        self.camera = camera
        self._group = group
        self.attrs: dict[str, Any] = dict(group.attrs)
        self.encoding = str(self.attrs["codec"])
        self.fps = float(self.attrs.get("fps", 0.0))
        self.shape = (int(self.attrs["height"]), int(self.attrs["width"]), 3)
        self._n = video_length(group) if frames is None else min(frames, video_length(group))
        self.keyframe: np.ndarray = group["keyframe"][: self._n]
        self._cursor: tuple[int, Iterator[av.VideoFrame]] | None = None  # next frame, its run
        self._last: tuple[int, np.ndarray] | None = None
        self._rgb = VideoDecoder(self.attrs).to_rgb  # the stream's colour conversion

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> np.ndarray:
        i = int(index) + (self._n if index < 0 else 0)
        if not 0 <= i < self._n:
            raise IndexError(f"frame {index} of camera {self.camera!r}: it has {self._n} frames")
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        start = keyframe_before(self.keyframe, i)
        if self._cursor is None or not start <= self._cursor[0] <= i:
            self._cursor = (start, self._run(start))
        position, run = self._cursor
        self._cursor = None  # until the run reached frame i: a failed read leaves no cursor
        picture = next(run)
        for _ in range(i - position):  # the pictures between: decoded, never converted
            picture = next(run)
        self._cursor = (i + 1, run)
        frame = read_only(self._rgb(picture))
        self._last = (i, frame)
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for i, picture in enumerate(self._run(0)):
            if i >= self._n:
                return
            yield read_only(self._rgb(picture))

    def _run(self, start: int) -> Iterator[av.VideoFrame]:
        """Decode from keyframe `start` to the end, a new decoder per run (a run must start
        at a keyframe); an error names the camera and the frame."""
        i = start
        try:
            for picture in VideoDecoder(self.attrs).pictures(self.packets(start)):
                yield picture
                i += 1
        except EpisodeFileError as exc:
            raise EpisodeFileError(f"camera {self.camera!r}, frame {i}: {exc}") from None
        if i < self._n:
            raise EpisodeFileError(f"camera {self.camera!r}, frame {i}: its packet gave no frame")

    def packets(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """The stored packets of frames [start, stop), read a chunk at a time."""
        stop = self._n if stop is None else min(stop, self._n)
        ds = self._group["packets"]
        for first in range(start, stop, VIDEO_CHUNK):
            yield from ds[first:min(first + VIDEO_CHUNK, stop)]

    def times(self) -> dict[str, np.ndarray]:
        """Each frame's arrival, capture and device times and sequence number."""
        return {name: self._group[name][: self._n] for name in VIDEO_TIMES if name in self._group}

    def encoded_bytes(self) -> int:
        return int(sum(len(p) for p in self.packets()))


class VideoTicks:
    """A video-coded camera per grid tick: `[t]` is the frame tick t shows (its frame index in
    `/observations/images/<camera>`), black while the camera had delivered nothing yet.
    Ticks that repeat a frame, or move on by one, cost no seek (see `VideoFrames`)."""

    def __init__(self, frame_index: np.ndarray, video: VideoFrames):
        self.frame_index = frame_index
        self.video = video
        self.encoding = video.encoding
        self.fps = video.fps
        self.shape = video.shape
        self._black = read_only(np.zeros(self.shape, np.uint8))

    def __len__(self) -> int:
        return int(self.frame_index.shape[0])

    def __getitem__(self, tick: int) -> np.ndarray:
        j = int(self.frame_index[tick])
        return self._black if j == NO_FRAME else self.video[j]

    def encoded_bytes(self) -> int:
        return self.video.encoded_bytes()


@dataclass
class VideoCheck:
    """Whether every stored packet of one camera decodes, and how fast that went."""

    camera: str
    frames: int  # packets stored
    decodable: int  # leading packets that decode; == frames when all do
    seconds: float
    problem: str = ""  # why frame `decodable` does not decode ("": every one does)


def check_video(group: h5py.Group, camera: str, frames: int | None = None,
                beat: Callable[[], None] = lambda: None) -> VideoCheck:
    """Decode every packet (the first `frames`) with a decoder of its own per keyframe run (as
    a seek would: each run must decode alone), stopping at the first that gives no frame.
    `beat` is called before each run (`collector recover`'s sign of progress)."""
    video = VideoFrames(group, camera, frames)
    n, began = len(video), time.perf_counter()
    keys = np.flatnonzero(video.keyframe)
    if not n:
        return VideoCheck(camera, 0, 0, 0.0)
    if not keys.size or keys[0] != 0:
        return VideoCheck(camera, n, 0, 0.0, "frame 0 is not a keyframe: nothing decodes")
    done, problem = 0, ""
    for start, stop in zip(keys, [*keys[1:], n], strict=True):
        beat()
        decoded, problem = _check_run(video, int(start), int(stop))
        done += decoded
        if problem:
            break
    return VideoCheck(camera, n, done, time.perf_counter() - began, problem)


def _check_run(video: VideoFrames, start: int, stop: int) -> tuple[int, str]:
    """How many leading packets of one keyframe run decode to a frame of the camera's size."""
    done = 0
    try:
        packets = list(video.packets(start, stop))
    except OSError as exc:  # a file cut short: its last chunks are not on disk
        return 0, f"unreadable ({str(exc).splitlines()[0] if str(exc) else 'OSError'})"
    try:
        for frame in VideoDecoder(video.attrs, strict=True).decode(packets):
            if frame.shape != video.shape:
                return done, f"decodes to {frame.shape}, expected {video.shape}"
            done += 1
    except EpisodeFileError as exc:
        return done, str(exc)
    return done, "" if done == stop - start else "its packet gives no frame"
