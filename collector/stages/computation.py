"""Computation: encode images (JPEG by default) and resize. The expensive stage, run as a pool."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from collector.batch import GridBatch
from collector.frames import FRAME_FIELD, pick_frames
from schemas.station import ImageEncoding

IMAGE_FIELD = "image"


def encoding_params(spec: ImageEncoding) -> dict:
    """What a reader needs to decode the frames, stored with every image dataset."""
    return {
        "encoding": spec.encoding,
        "quality": spec.quality if spec.encoding == "jpeg" else 0,
        "png_compression": spec.png_compression if spec.encoding == "png" else 0,
        "color_order": "rgb",
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
    """Fetches the frames the grid chose and encodes them; other streams pass through."""

    def __init__(self, images: ImageEncoding, camera_shapes: dict[str, tuple[int, ...]]):
        self.images = images
        self.cameras = camera_shapes  # camera stream -> frame shape (H, W, 3)

    def process(self, batch: GridBatch) -> GridBatch:
        """`batch.frames` must hold resolved `RawBatch`es (the Ray engine fetches them)."""
        for name, shape in self.cameras.items():
            stream = batch.streams[name]
            frames = pick_frames(stream.values.pop(FRAME_FIELD), name, IMAGE_FIELD,
                                 batch.frames, stream.missing, shape)
            stream.values[IMAGE_FIELD] = encode_frames(frames, self.images)
            batch.encoding[name] = encoding_params(self.images)
        batch.frames = {}  # done with the pixels: what travels on is small
        return batch
