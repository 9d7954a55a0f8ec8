"""A camera through OpenCV: device index, /dev/video path, video file or stream URL.

Frames enter the pipeline as RGB (OpenCV delivers BGR; `delivers: rgb` names a capture that
hands out RGB already), rotated as configured, at the configured size. A device that stops
delivering frames raises `DeviceError`; the reader thread reconnects with backoff and counts the
lost time.
A video file plays at its own fps (paced), and ends like an unplugged camera.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from core.errors import DeviceError
from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from schemas.devices import OpenCVCameraConfig

ROTATIONS = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def parse_source(source: int | str) -> int | str:
    """`0` or "0" -> index 0; anything else (path, file, URL) as given."""
    if isinstance(source, str) and source.strip().isdigit():
        return int(source)
    return source


def is_file(source: int | str) -> bool:
    return isinstance(source, str) and "://" not in source and not source.startswith("/dev/")


class OpenCVCamera(ThreadedDevice):
    def __init__(self, config: OpenCVCameraConfig):
        h, w = config.height, config.width
        if config.rotation in (90, 270):
            h, w = w, h
        super().__init__(StreamInfo(config.name, "camera", config.fps,
                                    {"image": FieldInfo((h, w, 3), "uint8")}))
        self.config = config
        self.source = parse_source(config.source)
        self.cap: cv2.VideoCapture | None = None
        self.frame_index = 0
        self._next_ns = 0
        self._period_ns = int(1e9 / config.fps)

    def _connect(self) -> None:
        c = self.config
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            raise DeviceError(f"{c.name}: cannot open camera source {c.source!r}; check the "
                              "index or path (collector devices lists cameras)")
        if not is_file(self.source):
            if c.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*c.fourcc))  # type: ignore[attr-defined]  # cv2 stubs lack it
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
            cap.set(cv2.CAP_PROP_FPS, c.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, c.buffer_size)
            for _ in range(c.warmup_frames):  # auto-exposure settles; frames are discarded
                cap.read()
        self.cap = cap
        self._next_ns = time.monotonic_ns()

    def _capture(self) -> CapturedSamples | None:
        if self.cap is None:
            raise DeviceError(f"{self.config.name}: not connected")
        if is_file(self.source):  # a file has no clock of its own: play it at its fps
            delay = (self._next_ns - time.monotonic_ns()) / 1e9
            if delay > 0:
                self._stop.wait(delay)
            self._next_ns += self._period_ns
        ok, frame = self.cap.read()
        arrival = time.monotonic_ns()
        if not ok or frame is None:
            raise DeviceError(f"{self.config.name}: camera stopped delivering frames")
        index = self.frame_index
        self.frame_index += 1
        # converted straight into the ring's next slot; a full ring refuses the frame before
        # it is converted
        slot = self._reserve(index)
        if slot is None:
            return None
        self.convert(frame, out=slot["image"])
        return CapturedSamples(device_ns=np.array([-1], np.int64), seq=np.array([index]),
                               values={"image": slot["image"][None]},
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
