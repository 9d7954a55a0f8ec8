"""The encoder: one video-coded camera's frames, in capture order, to one packet per frame.

Encoding is stateful (a group of pictures spans reads), so each camera has one `CameraEncoder`
that sees every job of its camera in order; cameras encode in parallel, each in its own
encoder (in Ray: its own actor). The frames stay in the read's block: the encoder takes the
rows perception named in the camera's `EncodeJob`, resizes them if the camera says so, and
encodes them before anything else touches them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np

from collector.batch import CameraPackets, EncodeJob, RawBatch
from core.codec import IMAGE_FIELD, resize_frames, stored_shape
from core.video import EncodedFrames, VideoEncoder
from schemas.station import ImageEncoding


class CameraEncoder:
    """A camera's `VideoEncoder` of the episode, fed job by job.

    A job that does not continue the frames encoded so far (a new episode, a perception that
    restarted and numbers from 0 again, frames lost before they reached us) starts a new
    encoder, so the next packet is a keyframe and decodes without what came before."""

    def __init__(self, camera: str, spec: ImageEncoding, shape: tuple[int, ...], fps: float):
        self.camera = camera
        self.spec = spec
        self.height, self.width, _ = stored_shape(spec, shape)
        self.fps = fps
        self._video: VideoEncoder | None = None
        self._episode: str | None = None
        self._base = 0  # frame number of the current encoder's first frame
        self._next = 0  # frame number the next job must start at to continue
        self._seq: deque[int] = deque()  # frames in, packets not yet out: their device seq

    def encode(self, batch: RawBatch, job: EncodeJob | None) -> CameraPackets:
        """The packets of this read's new frames (`job` None: none came)."""
        if batch.clock.episode_id != self._episode:
            self._episode, self._video = batch.clock.episode_id, None
        if job is None or not len(job.rows):
            return self._packets(EncodedFrames.empty(self._next))
        if self._video is None or job.first != self._next:
            self._start(job.first)
        assert self._video is not None
        chunk = batch.chunks[self.camera]
        rows = job.rows
        frames = np.asarray(resize_frames(rows_of(chunk.fields[IMAGE_FIELD], rows), self.spec))
        self._seq.extend(chunk.seq[rows].tolist())
        self._next = job.first + len(rows)
        return self._packets(self._video.add(frames, chunk.capture_ns[rows],
                                             chunk.device_ns[rows], chunk.arrival_ns[rows]))

    def finish(self) -> CameraPackets:
        """The episode's last packets (those the codec still held); the encoder is done."""
        if self._video is None:
            return self._packets(EncodedFrames.empty(self._next))
        out = self._packets(self._video.finish())
        self._video = None
        return out

    def _start(self, first: int) -> None:
        self._video = VideoEncoder(self.spec, self.width, self.height, self.fps)
        self._base = self._next = first
        self._seq.clear()

    def _packets(self, frames: EncodedFrames) -> CameraPackets:
        """Packets numbered as perception numbered their frames, with their frames' seq."""
        if not len(frames):
            return CameraPackets(EncodedFrames.empty(self._next), np.zeros(0, np.int64))
        seq = np.array([self._seq.popleft() for _ in range(len(frames))], np.int64)
        return CameraPackets(replace(frames, first=self._base + frames.first), seq)


def rows_of(images: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`images[rows]`, as a view when the rows follow each other (a read's new frames usually
    do): the encoder only reads them, and a copy of three 640x480 frames cost 0.28 ms."""
    first = int(rows[0])
    if rows[-1] - first == len(rows) - 1 and np.all(np.diff(rows) == 1):
        return images[first:first + len(rows)]
    return images[rows]
