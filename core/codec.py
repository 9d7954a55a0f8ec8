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
# A camera that keeps its own JPEG (opencv_camera `passthrough: jpeg`) hands out, instead of
# `image`, each frame's bytes in a fixed slot (`jpeg`, as long as the raw frame) and how many
# of them are the frame (`jpeg_size`): the ring holds fixed-size samples.
JPEG_FIELD = "jpeg"
JPEG_SIZE_FIELD = "jpeg_size"
FRAME_DATA_FIELDS = (IMAGE_FIELD, JPEG_FIELD, JPEG_SIZE_FIELD)  # what a camera's frame is
CAMERA_JPEG = "camera"  # `jpeg_source` of frames stored as the camera delivered them
REDUCED_GRAY = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
REDUCED_COLOR = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}
# JPEG markers with no length after them (TEM, RSTn); every other one before the scan has one
_STANDALONE = {0x01, *range(0xD0, 0xD8)}
_SOF = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}  # start of frame (not DHT, JPG, DAC)
ENCODED_COLOR = "true color (PIL/imageio decode to rgb, cv2.imdecode to bgr)"


def encoding_params(spec: ImageEncoding, camera_jpeg: bool = False) -> dict[str, str | int]:
    """What a reader needs to decode the frames, stored with every image dataset.

    Raw frames are arrays in RGB order. JPEG/PNG bytes hold true colour (the codec's own
    model), so the order depends on the decoder: PIL and imageio return RGB, `cv2.imdecode`
    returns BGR. Both are stated, so no reader has to guess.

    `camera_jpeg`: the frames are the camera's own JPEG bytes; their quality is the camera's,
    which no one told us, so `quality` is 0 (unknown), not the configured one.
    """
    if camera_jpeg:
        return {**encoding_params(spec), "quality": 0, "jpeg_source": CAMERA_JPEG}
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


def jpeg_dimensions(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding it; None when `data` is
    not a JPEG (no SOI) or has no frame header before its scan."""
    b = np.ascontiguousarray(data, np.uint8).tobytes()
    if len(b) < 4 or b[0] != 0xFF or b[1] != 0xD8:
        return None
    at = 2
    while at + 4 <= len(b):  # a handful of markers: the headers come before the scan
        if b[at] != 0xFF:
            return None
        marker = b[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header came
            return None
        if marker in _SOF and at + 9 <= len(b):
            return (b[at + 7] << 8 | b[at + 8]), (b[at + 5] << 8 | b[at + 6])
        at += 2 + (b[at + 2] << 8 | b[at + 3])
    return None


def jpeg_scale(downscale: int) -> int:
    """The largest scale libjpeg decodes at directly (1/2, 1/4, 1/8) that divides `downscale`:
    the IDCT then does part of the shrinking for free, the rest is an area resize."""
    return next(s for s in (8, 4, 2, 1) if downscale % s == 0)


def decode_gray(data: np.ndarray, scale: int = 1) -> np.ndarray | None:
    """A JPEG's luma, at 1/`scale` of its size (libjpeg's scaled IDCT: no full-size decode, no
    colour conversion); None when the bytes do not decode. `scale` is 1, 2, 4 or 8."""
    flag = REDUCED_GRAY[scale] if scale > 1 else cv2.IMREAD_GRAYSCALE
    return cv2.imdecode(np.asarray(data, np.uint8), flag)


def decode_rgb(data: np.ndarray, scale: int = 1) -> np.ndarray:
    """A JPEG as RGB uint8, at 1/`scale` of its size (1, 2, 4 or 8)."""
    flag = REDUCED_COLOR[scale] if scale > 1 else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.asarray(data, np.uint8), flag)
    if image is None:
        raise ValueError("frame bytes do not decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
