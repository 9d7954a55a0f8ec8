"""Computation: encode images (JPEG by default) and resize. The expensive stage, run as a pool."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from collector.batch import GridBatch
from collector.frames import FRAME_BEFORE, FRAME_FIELD, frame_at, pick_frames
from collector.quality import PIXEL_CHECKS, SCORE, frame_scores, small_gray
from schemas.station import CameraChecks, ImageEncoding

IMAGE_FIELD = "image"
ENCODED_COLOR = "true color (PIL/imageio decode to rgb, cv2.imdecode to bgr)"


def encoding_params(spec: ImageEncoding) -> dict:
    """What a reader needs to decode the frames, stored with every image dataset.

    Raw frames are arrays in RGB order. JPEG/PNG bytes hold true colour (the codec's own
    model), so the order depends on the decoder: PIL and imageio return RGB, `cv2.imdecode`
    returns BGR. Both are stated, so no reader has to guess.
    """
    if spec.encoding == "raw":
        order = {"color_order": "rgb"}
    else:
        order = {"color_order": ENCODED_COLOR, "pil_color_order": "rgb",
                 "cv2_color_order": "bgr"}
    return {
        "encoding": spec.encoding,
        "quality": spec.quality if spec.encoding == "jpeg" else 0,
        "png_compression": spec.png_compression if spec.encoding == "png" else 0,
        **order,
    }


def encode_frames(frames: np.ndarray | Sequence[np.ndarray], spec: ImageEncoding) -> np.ndarray:
    """m RGB uint8 (H, W, 3) frames -> object array of m encoded byte arrays (uint8), or the
    raw frames stacked."""
    if spec.resize is not None:
        width, height = spec.resize
        frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                           for f in frames]) if len(frames) else \
            np.zeros((0, height, width, 3), np.uint8)
    if spec.encoding == "raw":
        return np.asarray(frames)
    ext, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, spec.quality]) if spec.encoding == "jpeg" \
        else (".png", [cv2.IMWRITE_PNG_COMPRESSION, spec.png_compression])
    out = np.empty(len(frames), dtype=object)
    for i, frame in enumerate(frames):  # one C call per frame: the codec is the work
        ok, buf = cv2.imencode(ext, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise ValueError(f"could not encode a {frame.shape} frame as {spec.encoding}")
        out[i] = buf.reshape(-1)
    return out


def decode_frame(data: np.ndarray, encoding: str) -> np.ndarray:
    """Inverse of `encode_frames` for one frame: RGB uint8 (H, W, 3)."""
    if encoding == "raw":
        return np.asarray(data)
    image = cv2.imdecode(np.asarray(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("frame bytes do not decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class Computation:
    """Fetches the frames the grid chose, runs their pixel checks and encodes them; other
    streams pass through. The only stage that touches pixels (so it is the parallel one)."""

    def __init__(self, images: ImageEncoding, camera_shapes: dict[str, tuple[int, ...]],
                 camera_checks: dict[str, CameraChecks] | None = None):
        self.images = images
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
                for check in PIXEL_CHECKS:
                    stream.flags[check] = scores[check][shown]
                    stream.scores[check + SCORE] = scores[check + SCORE][shown]
            stream.values[IMAGE_FIELD] = encode_frames(frames, self.images)[shown]
            batch.encoding[name] = encoding_params(self.images)
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
