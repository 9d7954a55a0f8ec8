"""The image codec: camera frames to the bytes an episode stores, and back.

Its own module, below drivers/ and collector/, because every side of a frame needs it: the
computation stage encodes, perception and the station name the image field, the reader,
validation and the replay device decode. One definition keeps the stored bytes and their
attributes the same wherever they are made or read.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from schemas.station import ImageEncoding

IMAGE_FIELD = "image"
ENCODED_COLOR = "true color (PIL/imageio decode to rgb, cv2.imdecode to bgr)"


def encoding_params(spec: ImageEncoding) -> dict[str, str | int]:
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


def stored_shape(spec: ImageEncoding, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A camera's frame shape (H, W, C) as stored: after `resize`, if the camera has one."""
    h, w, c = shape
    return (spec.resize[1], spec.resize[0], c) if spec.resize else (h, w, c)


def resize_frames(frames: np.ndarray | Sequence[np.ndarray],
                  spec: ImageEncoding) -> np.ndarray | Sequence[np.ndarray]:
    """The frames at the stored size (`resize`), or as they are when it is not set."""
    if spec.resize is None:
        return frames
    width, height = spec.resize
    if not len(frames):
        return np.zeros((0, height, width, 3), np.uint8)
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA)
                     for f in frames])


def encode_frames(frames: np.ndarray | Sequence[np.ndarray], spec: ImageEncoding) -> np.ndarray:
    """m RGB uint8 (H, W, 3) frames -> object array of m encoded byte arrays (uint8), or the
    raw frames stacked."""
    frames = resize_frames(frames, spec)
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
