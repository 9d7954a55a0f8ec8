"""Computation: encode images (JPEG by default) and resize. The expensive stage, run as a pool."""

from __future__ import annotations

import cv2
import numpy as np

from collector.batch import GridBatch
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


def encode_frames(frames: np.ndarray, spec: ImageEncoding) -> np.ndarray:
    """(m, H, W, 3) RGB uint8 -> object array of m encoded byte arrays (uint8), or raw frames."""
    if spec.resize is not None:
        width, height = spec.resize
        frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                           for f in frames]) if len(frames) else \
            np.zeros((0, height, width, 3), np.uint8)
    if spec.encoding == "raw":
        return frames
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
    """Turns aligned frames into encoded frames; other streams pass through."""

    def __init__(self, images: ImageEncoding, camera_streams: list[str]):
        self.images = images
        self.cameras = camera_streams

    def process(self, batch: GridBatch) -> GridBatch:
        for name in self.cameras:
            stream = batch.streams[name]
            stream.values[IMAGE_FIELD] = encode_frames(stream.values[IMAGE_FIELD], self.images)
            batch.encoding[name] = encoding_params(self.images)
        for chunk in batch.raw.values():  # full-rate frames are not kept; their timing is
            chunk.fields.pop(IMAGE_FIELD, None)
        return batch
