"""A camera through OpenCV: device index, /dev/video path, video file or stream URL.

Frames enter the pipeline as RGB (OpenCV delivers BGR; `delivers: rgb` names a capture that
hands out RGB already), rotated as configured, at the configured size. A device that stops
delivering frames raises `DeviceError`; the reader thread reconnects with backoff and counts the
lost time.
A video file plays at its own frame times (paced: a frame after a gap in them comes that much
later, as a real camera's frame after a drop does; one frame per period where it has none), and
ends like an unplugged camera.

Frames are numbered by the camera's own frame times (drivers/frame_numbers.py), so a frame the
camera, file or stream skipped leaves a sequence gap, which the pipeline flags `dropped` on the
tick that should have shown it. A file's frame times are also its device clock (`device_ns`):
its frames are captured when they play, however late the reader thread got to them, as a real
camera's frame is captured when its sensor took it.

With `passthrough: jpeg`, when the station stores the camera as JPEG at its own size (the
caller says so: `stores_jpeg`) and it is not rotated, the driver hands out the camera's own
JPEG bytes instead of pixels (fields `jpeg`/`jpeg_size`, see core/codec.py): OpenCV's raw mode,
`CAP_PROP_FORMAT -1` for a file or stream read through FFmpeg (each packet), `CAP_PROP_CONVERT_RGB
false` for a V4L2 camera asked for MJPG (each buffer). Nothing is decoded here.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from core.codec import JPEG_FIELD, JPEG_SIZE_FIELD, jpeg_dimensions
from core.errors import DeviceError
from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from drivers.frame_numbers import FrameNumbers, Numbered
from schemas.devices import OpenCVCameraConfig

ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def parse_source(source: int | str) -> int | str:
    """`0` or "0" -> index 0; anything else (path, file, URL) as given."""
    if isinstance(source, str) and source.strip().isdigit():
        return int(source)
    return source


def is_file(source: int | str) -> bool:
    return isinstance(source, str) and "://" not in source and not source.startswith("/dev/")


def is_url(source: int | str) -> bool:
    return isinstance(source, str) and "://" in source


class OpenCVCamera(ThreadedDevice):
    def __init__(self, config: OpenCVCameraConfig, stores_jpeg: bool = False):
        """`stores_jpeg`: the station stores this camera's frames as JPEG, at its own size; with
        `passthrough: jpeg` (and no rotation) its own bytes are kept then."""
        h, w = config.height, config.width
        if config.rotation in (90, 270):
            h, w = w, h
        self.keeps_jpeg = config.passthrough == "jpeg" and stores_jpeg and config.rotation == 0
        if self.keeps_jpeg:
            # a JPEG larger than the frame's own pixels is not one a camera makes
            fields = {JPEG_FIELD: FieldInfo((h * w * 3,), "uint8"),
                      JPEG_SIZE_FIELD: FieldInfo((1,), "int64")}
        else:
            fields = {"image": FieldInfo((h, w, 3), "uint8")}
        super().__init__(StreamInfo(config.name, "camera", config.fps, fields, frame=(h, w, 3)))
        self.config = config
        self.source = parse_source(config.source)
        self.cap: cv2.VideoCapture | None = None
        self.numbers = FrameNumbers(int(1e9 / config.fps), paced=is_file(self.source))
        self._opened_ns = 0  # when the connection began: a file's frames play from then
        # the frame `_connect` looked at: its pixels or bytes, time (ms) and arrival
        self._held: tuple[np.ndarray, float, int] | None = None

    def _connect(self) -> None:
        c = self.config
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(f"{c.name}: cannot open camera source {c.source!r}; check the "
                              "index or path (collector devices lists cameras)")
        device = not is_file(self.source) and not is_url(self.source)
        if not is_file(self.source):
            fourcc = c.fourcc or ("MJPG" if self.keeps_jpeg and device else None)
            if fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))  # type: ignore[attr-defined]  # cv2 stubs lack it
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
            cap.set(cv2.CAP_PROP_FPS, c.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, c.buffer_size)
        if self.keeps_jpeg:
            raw = cap.set(cv2.CAP_PROP_CONVERT_RGB, 0) if device else \
                cap.set(cv2.CAP_PROP_FORMAT, -1)
            if not raw:
                cap.release()
                raise DeviceError(f"{c.name}: this OpenCV build cannot hand out the camera's "
                                  "compressed frames; remove passthrough")
        if not is_file(self.source):
            for _ in range(c.warmup_frames):  # auto-exposure settles; frames are discarded
                cap.read()
        self.cap = cap
        self.numbers.restart()
        self._opened_ns = time.monotonic_ns()
        self._held = None
        if self.keeps_jpeg:
            self._held = self._check_jpeg(cap)

    def _check_jpeg(self, cap: cv2.VideoCapture) -> tuple[np.ndarray, float, int]:
        """The first frame and its time, read now to be sure the camera delivers JPEG at the
        configured size (kept for the first `_capture`: a file's first frame is not skipped)."""
        c = self.config
        ok, data = cap.read()
        stamp_ms, arrival = cap.get(cv2.CAP_PROP_POS_MSEC), time.monotonic_ns()
        size = jpeg_dimensions(data.reshape(-1)) if ok and data is not None else None
        if size is None:
            cap.release()
            raise DeviceError(f"{c.name}: passthrough: jpeg, but the camera does not deliver "
                              "JPEG (MJPG); give it fourcc MJPG, or remove passthrough")
        if size != (c.width, c.height):
            cap.release()
            raise DeviceError(f"{c.name}: delivers {size[0]}x{size[1]} JPEG, not the "
                              f"configured {c.width}x{c.height}; set width and height to what "
                              "it delivers (passthrough keeps the camera's frames as they are)")
        return data, stamp_ms, arrival

    def _capture(self) -> CapturedSamples | None:
        if self.cap is None:
            raise DeviceError(f"{self.config.name}: not connected")
        if self._held is not None:
            (frame, stamp_ms, arrival), self._held = self._held, None
        else:
            ok, frame = self.cap.read()
            arrival = time.monotonic_ns()
            # Read after the frame: its presentation time through FFmpeg, its buffer time
            # through V4L2. Seen with OpenCV 5.0 (FFmpeg backend) on files written by PyAV at
            # rate 30 with frames left out (`pts` the original index): .mkv (ms time base)
            # 0, 33, 67, 133, ... ms; .mp4 (h264 with B-frames, mpeg4) and MJPG .avi 0, 33.333,
            # 66.667, 133.333, ... - the gaps kept, in presentation order, and the same in raw
            # mode (`CAP_PROP_FORMAT -1`, passthrough). CAP_PROP_FPS is no help: it said 24 for
            # that .mp4 (frames over duration). An MJPEG-over-HTTP stream gets FFmpeg's guessed
            # 25 fps (0, 40, 80 ms, whatever the camera sends): FrameNumbers does not believe
            # such gaps.
            stamp_ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            if not ok or frame is None:
                raise DeviceError(f"{self.config.name}: camera stopped delivering frames")
        if is_file(self.source):
            numbered = self.numbers.number(stamp_ms)
            arrival, device = self._play(numbered), numbered.play_ns
        else:
            # A live camera's times stay out of device_ns: only V4L2's are known to be a clock
            # (FFmpeg's for an MJPEG stream are a guess, above), and none was tried on a device.
            numbered, device = self.numbers.number(stamp_ms, arrival), -1
        index = numbered.seq
        if self.keeps_jpeg:
            return self._keep_jpeg(frame.reshape(-1), index, arrival, device)
        # converted straight into the ring's next slot; a full ring refuses the frame before
        # it is converted
        slot = self._reserve(index)
        if slot is None:
            return None
        self.convert(frame, out=slot["image"])
        return CapturedSamples(device_ns=np.array([device], np.int64), seq=np.array([index]),
                               values={"image": slot["image"][None]},
                               arrival_ns=np.array([arrival], np.int64))

    def _play(self, numbered: Numbered) -> int:
        """Wait until a file's frame is due (its play time since the file opened): when it
        arrives."""
        delay = (self._opened_ns + numbered.play_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            self._stop.wait(delay)
        return time.monotonic_ns()

    def _keep_jpeg(self, data: np.ndarray, index: int, arrival: int,
                   device: int) -> CapturedSamples | None:
        """The camera's JPEG bytes, copied into the ring's next slot as they came."""
        if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
            # not a JPEG (a damaged transfer): lost, and counted as a checksum failure, as a
            # serial packet that fails its check is
            self.checksum_failures += 1
            return None
        slot = self._reserve(index)
        if slot is None:
            return None
        buf = slot[JPEG_FIELD]
        if data.size > buf.size:  # never seen: bigger than the frame's own pixels
            self._ring.refuse(np.array([index]))
            return None
        buf[:data.size] = data
        slot[JPEG_SIZE_FIELD][0] = data.size
        return CapturedSamples(device_ns=np.array([device], np.int64), seq=np.array([index]),
                               values={k: v[None] for k, v in slot.items()},
                               arrival_ns=np.array([arrival], np.int64))

    def convert(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """BGR from OpenCV -> the pipeline's frame: size, color order, rotation; the last
        step writes into `out` when given (a ring slot)."""
        c = self.config
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        resize = frame.shape[:2] != (c.height, c.width)
        swap = c.delivers == "bgr"
        last = "rotate" if c.rotation else "swap" if swap else "resize" if resize else ""
        if resize:
            frame = cv2.resize(frame, (c.width, c.height), dst=out if last == "resize" else None,
                               interpolation=cv2.INTER_AREA)
        if swap:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=out if last == "swap" else None)
        if c.rotation:
            frame = cv2.rotate(frame, ROTATIONS[c.rotation], dst=out)
        if out is None:
            return frame
        if not np.shares_memory(frame, out):  # no step ran, or OpenCV would not write there
            np.copyto(out, frame)
        return out

    def _disconnect(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
