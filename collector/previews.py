"""Camera previews: the latest frame of each camera, small and JPEG, for the operator page.

`PreviewTap` sits in `Capture` (collector/capture.py), where the frames already are, in either
engine: on a read it keeps a downscaled copy of a camera's newest frame, at most `PREVIEW_HZ`
times a second per camera, and only for `WANTED_FOR_S` after someone last asked (`collect`);
with nobody asking it costs one comparison per read. The daemon's side is
collector/daemon/previews.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from core.codec import IMAGE_FIELD, JPEG_FIELD, JPEG_SIZE_FIELD, decode_rgb, encode_frames
from schemas.station import ImageEncoding

PREVIEW_HZ = 4.0  # per camera: "a few times a second"
WANTED_FOR_S = 3.0  # previews stop this long after the daemon last collected them
PREVIEW_WIDTH = 320  # px; height follows the camera's aspect ratio
PREVIEW_QUALITY = 70  # JPEG


@dataclass(frozen=True)
class Preview:
    camera: str
    seq: int  # counts this camera's previews: a new number is a new picture
    arrival_ns: int  # when the frame arrived (monotonic, the station's clock)
    width: int
    height: int
    jpeg: bytes


def preview_size(width: int, height: int) -> tuple[int, int]:
    """The preview's (width, height): `PREVIEW_WIDTH` wide at most, the frame's aspect."""
    if width <= PREVIEW_WIDTH:
        return width, height
    return PREVIEW_WIDTH, max(1, round(height * PREVIEW_WIDTH / width))


def newest_frame(fields: dict[str, np.ndarray], width: int) -> np.ndarray | None:
    """The newest frame of a camera read (`width` px wide), as RGB: a camera that hands out its
    own JPEG has it decoded at the smallest scale that is still as wide as a preview (None: it
    does not decode; the pipeline flags it, the preview waits for the next)."""
    if JPEG_FIELD not in fields:
        return fields[IMAGE_FIELD][-1]
    data = fields[JPEG_FIELD][-1, :int(fields[JPEG_SIZE_FIELD][-1, 0])]
    scale = next(s for s in (8, 4, 2, 1) if s == 1 or width // s >= PREVIEW_WIDTH)
    try:
        return decode_rgb(data, scale)
    except ValueError:
        return None


class PreviewTap:
    """The capture side: called by `Capture` on each camera read; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked_ns: int | None = None
        self._taken_ns: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self._fresh: dict[str, Preview] = {}

    def due(self, camera: str, now_ns: int) -> bool:
        """Whether a read now should give this camera a preview."""
        asked = self._asked_ns
        if asked is None or now_ns - asked > WANTED_FOR_S * 1e9:
            return False
        return now_ns - self._taken_ns.get(camera, -(1 << 62)) >= 1e9 / PREVIEW_HZ

    def take(self, camera: str, frame: np.ndarray, arrival_ns: int, now_ns: int) -> None:
        """Keep `frame` (RGB, H x W x 3, possibly a view into a device buffer: it is read here,
        once, and not kept) as the camera's preview."""
        height, width = frame.shape[:2]
        size = preview_size(width, height)
        spec = ImageEncoding(encoding="jpeg", quality=PREVIEW_QUALITY,
                             resize=None if size == (width, height) else size)
        [jpeg] = encode_frames(frame[None], spec)
        with self._lock:
            self._taken_ns[camera] = now_ns
            seq = self._seq[camera] = self._seq.get(camera, 0) + 1
            self._fresh[camera] = Preview(camera, seq, arrival_ns, size[0], size[1],
                                          jpeg.tobytes())

    def collect(self, now_ns: int) -> dict[str, Preview]:
        """The previews taken since the last call, and a request for more (`WANTED_FOR_S`)."""
        with self._lock:
            self._asked_ns = now_ns
            fresh, self._fresh = self._fresh, {}
        return fresh
