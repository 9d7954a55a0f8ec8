"""Computation: pixel checks, and per-tick images (JPEG...) encoded and resized. The expensive
stage, run as a pool. Video-coded cameras are encoded by their own encoders (stages/encoding.py):
here their ticks keep the index of the frame they show. A camera that hands out its own JPEG
(opencv_camera `passthrough: jpeg`) has those bytes stored, and its checks run on a reduced
decode of them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from collector.batch import GridBatch
from collector.frames import FRAME_BEFORE, FRAME_FIELD, FRAME_INDEX, frame_at, pick_frames
from collector.quality import PIXEL_CHECKS, SCORE, frame_scores, jpeg_small_gray, small_gray
from collector.storage.checksums import packet_crcs
from core.codec import IMAGE_FIELD, JPEG_FIELD, encode_frames, encoding_params
from schemas.layout import NO_FRAME
from schemas.station import CameraChecks, ImageEncoding


class Computation:
    """Fetches the frames the grid chose, runs their pixel checks and encodes them; other
    streams pass through. The only stage that touches pixels (so it is the parallel one)."""

    def __init__(self, images: dict[str, ImageEncoding],
                 camera_shapes: dict[str, tuple[int, ...]],
                 camera_checks: dict[str, CameraChecks] | None = None,
                 camera_jpeg: frozenset[str] = frozenset()):
        self.images = images  # camera stream -> how its frames are stored
        self.cameras = camera_shapes  # camera stream -> frame shape (H, W, 3)
        self.checks = camera_checks or {}  # camera stream -> its checks (none: not checked)
        self.camera_jpeg = camera_jpeg  # cameras whose frames are their own JPEG bytes
        # what a tick of such a camera shows before its first frame: black, as elsewhere
        self._black = {name: encode_frames(np.zeros((1, *camera_shapes[name]), np.uint8),
                                           images[name])[0] for name in camera_jpeg}

    def process(self, batch: GridBatch) -> GridBatch:
        """`batch.frames` must hold resolved `RawBatch`es (the Ray engine fetches them)."""
        for name, shape in self.cameras.items():
            stream = batch.streams[name]
            jpeg = name in self.camera_jpeg
            # each frame once, however many ticks show it (a slow camera, or a gap of missing
            # ticks that repeat the frame before it)
            handles, shown = np.unique(stream.values.pop(FRAME_FIELD), return_inverse=True)
            first = np.zeros(len(handles), np.intp)
            first[shown[::-1]] = np.arange(len(shown))[::-1]  # a tick showing each frame
            before = stream.values.pop(FRAME_BEFORE)[first]
            frames = pick_frames(handles, name, JPEG_FIELD if jpeg else IMAGE_FIELD,
                                 batch.frames, stream.missing[first], shape,
                                 self._black.get(name))
            if name in self.checks and len(frames):
                scores, corrupt = self._check(name, frames, handles, before, batch.frames, jpeg)
                # a tick with no frame (the camera was down) shows a black stand-in: its
                # pixels say nothing of the camera, so it raises no pixel flag
                none = handles < 0
                for check in PIXEL_CHECKS:
                    flags = scores[check] & ~none
                    values = np.where(none, np.nan, scores[check + SCORE]).astype(np.float32)
                    stream.flags[check] = flags[shown]
                    stream.scores[check + SCORE] = values[shown]
                if corrupt.any():  # a JPEG that does not decode: the camera sent it damaged
                    stream.flags["checksum"] = stream.flags["checksum"] | corrupt[shown]
                    stream.scores["checksum" + SCORE] = (stream.scores["checksum" + SCORE]
                                                         + corrupt[shown])
            spec = self.images[name]
            if spec.is_video:  # stored once by its encoder: point at it
                index = stream.values.pop(FRAME_INDEX)
                stream.values[IMAGE_FIELD] = np.where(stream.capture_ns < 0, NO_FRAME,
                                                      index).astype(np.int64)
            elif jpeg:  # the camera's own bytes, copied out of the block they arrived in
                stored = np.empty(len(frames), dtype=object)
                for i, data in enumerate(frames):
                    stored[i] = np.array(data, np.uint8)
                stream.values[IMAGE_FIELD] = stored[shown]
                stream.frame_crc32 = packet_crcs(stored)[shown]  # as the camera sent them
                batch.encoding[name] = encoding_params(spec, camera_jpeg=True)
            else:
                encoded = encode_frames(frames, spec)
                stream.values[IMAGE_FIELD] = encoded[shown]
                if spec.encoding != "raw":  # variable-length: no chunk checksum covers them
                    stream.frame_crc32 = packet_crcs(encoded)[shown]
                batch.encoding[name] = encoding_params(spec)
        batch.frames = {}  # done with the pixels: what travels on is small
        return batch

    def _check(self, name: str, frames: Sequence[np.ndarray] | np.ndarray, handles: np.ndarray,
               before: np.ndarray, blocks: dict, jpeg: bool = False
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Pixel checks of each tick's frame beside the frame delivered before it (shrunk
        once per frame: a tick's frame is usually the next tick's frame before), and which
        frames did not decode (a camera's own JPEG: their checks are a black frame's, not
        flagged).

        A camera's own JPEG is not decoded at full size: `jpeg_small_gray` decodes it
        straight at (about) the checks' size."""
        checks = self.checks[name]
        height, width = self.cameras[name][:2]
        small: dict[int, np.ndarray] = {}
        corrupt: set[int] = set()
        black = np.zeros((max(height // checks.downscale, 1), max(width // checks.downscale, 1)),
                         np.uint8)

        def shrink(handle: int, frame: np.ndarray) -> np.ndarray:
            if handle not in small:
                if not jpeg:
                    small[handle] = small_gray(frame[None], checks.downscale)[0]
                else:
                    gray = jpeg_small_gray(frame, checks.downscale, height, width)
                    if gray is None:
                        corrupt.add(handle)
                    small[handle] = black if gray is None else gray
            return small[handle]

        gray = np.stack([shrink(h, f) for h, f in zip(handles.tolist(), frames, strict=True)])
        previous = np.zeros_like(gray)
        has = np.zeros(len(gray), bool)
        field = JPEG_FIELD if jpeg else IMAGE_FIELD
        for tick, handle in enumerate(before.tolist()):
            frame = frame_at(handle, name, field, blocks)
            if frame is not None:
                previous[tick] = shrink(handle, frame)
                has[tick] = handle not in corrupt
        scores = frame_scores(gray, previous, has, checks)
        bad = np.array([handle in corrupt for handle in handles.tolist()], bool)
        if bad.any():
            for check in PIXEL_CHECKS:
                scores[check] = scores[check] & ~bad
        return scores, bad
