"""Computation: pixel checks, and per-tick images (JPEG...) encoded and resized. The expensive
stage, run as a pool. Video-coded cameras are encoded by their own encoders (stages/encoding.py):
here their ticks keep the index of the frame they show."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from collector.batch import GridBatch
from collector.frames import FRAME_BEFORE, FRAME_FIELD, FRAME_INDEX, frame_at, pick_frames
from collector.quality import PIXEL_CHECKS, SCORE, frame_scores, small_gray
from core.codec import IMAGE_FIELD, encode_frames, encoding_params
from schemas.layout import NO_FRAME
from schemas.station import CameraChecks, ImageEncoding


class Computation:
    """Fetches the frames the grid chose, runs their pixel checks and encodes them; other
    streams pass through. The only stage that touches pixels (so it is the parallel one)."""

    def __init__(self, images: dict[str, ImageEncoding],
                 camera_shapes: dict[str, tuple[int, ...]],
                 camera_checks: dict[str, CameraChecks] | None = None):
        self.images = images  # camera stream -> how its frames are stored
        self.cameras = camera_shapes  # camera stream -> frame shape (H, W, 3)
        self.checks = camera_checks or {}  # camera stream -> its checks (none: not checked)

    def process(self, batch: GridBatch) -> GridBatch:
        """`batch.frames` must hold resolved `RawBatch`es (the Ray engine fetches them)."""
        for name, shape in self.cameras.items():
            stream = batch.streams[name]
            # each frame once, however many ticks show it (a slow camera, or a gap of missing
            # ticks that repeat the frame before it)
            handles, shown = np.unique(stream.values.pop(FRAME_FIELD), return_inverse=True)
            first = np.zeros(len(handles), np.intp)
            first[shown[::-1]] = np.arange(len(shown))[::-1]  # a tick showing each frame
            before = stream.values.pop(FRAME_BEFORE)[first]
            frames = pick_frames(handles, name, IMAGE_FIELD, batch.frames,
                                 stream.missing[first], shape)
            if name in self.checks and len(frames):
                scores = self._check(name, frames, handles, before, batch.frames)
                # a tick with no frame (the camera was down) shows a black stand-in: its
                # pixels say nothing of the camera, so it raises no pixel flag
                none = handles < 0
                for check in PIXEL_CHECKS:
                    flags = scores[check] & ~none
                    values = np.where(none, np.nan, scores[check + SCORE]).astype(np.float32)
                    stream.flags[check] = flags[shown]
                    stream.scores[check + SCORE] = values[shown]
            spec = self.images[name]
            if spec.is_video:  # stored once by its encoder: point at it
                index = stream.values.pop(FRAME_INDEX)
                stream.values[IMAGE_FIELD] = np.where(stream.capture_ns < 0, NO_FRAME,
                                                      index).astype(np.int64)
            else:
                stream.values[IMAGE_FIELD] = encode_frames(frames, spec)[shown]
                batch.encoding[name] = encoding_params(spec)
        batch.frames = {}  # done with the pixels: what travels on is small
        return batch

    def _check(self, name: str, frames: Sequence[np.ndarray] | np.ndarray, handles: np.ndarray,
               before: np.ndarray, blocks: dict) -> dict[str, np.ndarray]:
        """Pixel checks of each tick's frame beside the frame delivered before it (shrunk
        once per frame: a tick's frame is usually the next tick's frame before)."""
        checks = self.checks[name]
        small: dict[int, np.ndarray] = {}

        def shrink(handle: int, frame: np.ndarray) -> np.ndarray:
            if handle not in small:
                small[handle] = small_gray(frame[None], checks.downscale)[0]
            return small[handle]

        gray = np.stack([shrink(h, f) for h, f in zip(handles.tolist(), frames, strict=True)])
        previous = np.zeros_like(gray)
        has = np.zeros(len(gray), bool)
        for tick, handle in enumerate(before.tolist()):
            frame = frame_at(handle, name, IMAGE_FIELD, blocks)
            if frame is not None:
                previous[tick], has[tick] = shrink(handle, frame), True
        return frame_scores(gray, previous, has, checks)
