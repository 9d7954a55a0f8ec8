"""A simulated camera: renders the simulated arm and object, stamps a readable frame counter."""

from __future__ import annotations

import time

import cv2
import numpy as np

from collector.errors import DeviceError
from drivers.base import Capture, FieldInfo, StreamInfo, ThreadedDevice
from drivers.sim.faults import FaultPlan
from drivers.sim.world import Pacer, SimWorld
from schemas.devices import SimCameraConfig

COUNTER_BITS = 24
COUNTER_CELL = 16  # pixels per bit cell: large enough to survive JPEG


def write_counter(image: np.ndarray, value: int) -> None:
    """Stamp `value` as a row of black/white cells along the top edge."""
    bits = (value >> np.arange(COUNTER_BITS)) & 1
    row = np.repeat(bits.astype(np.uint8) * 255, COUNTER_CELL)
    image[:COUNTER_CELL, : row.shape[0]] = row[None, :, None]


def read_counter(image: np.ndarray) -> int:
    """The frame counter a sim camera stamped, read back from an (even lossy) image."""
    cells = image[2 : COUNTER_CELL - 2, : COUNTER_BITS * COUNTER_CELL].astype(np.float32)
    centers = cells.reshape(cells.shape[0], COUNTER_BITS, COUNTER_CELL, -1)[:, :, 4:-4]
    bits = centers.mean(axis=(0, 2, 3)) > 127
    return int((bits.astype(np.int64) << np.arange(COUNTER_BITS)).sum())


class SimCamera(ThreadedDevice):
    def __init__(self, config: SimCameraConfig, world: SimWorld, view: int = 0,
                 realtime: bool = True):
        shape = (config.height, config.width, 3)
        super().__init__(StreamInfo(config.name, "camera", config.fps,
                                    {"image": FieldInfo(shape, "uint8")}))
        self.config = config
        self.world = world
        self.view = view
        self.faults = FaultPlan(config.faults, salt=view + 1)
        self.pacer = Pacer(config.fps, realtime)
        self.frame_index = 0
        self._background = _background(config.width, config.height, view)
        self._last: np.ndarray | None = None

    def _connect(self) -> None:
        now = time.monotonic_ns()
        if self.faults.opened_ns is None:
            self.faults.opened_ns = now
        if self.faults.disconnected(now):
            raise DeviceError(f"{self.config.name}: simulated camera unplugged")
        self.pacer.next_ns = max(self.pacer.next_ns, now)

    def _capture(self) -> Capture | None:
        if not self.pacer.realtime and len(self._ring) >= self._ring.capacity:
            # Max mode: flat out, but a frame the full ring would refuse is not worth rendering
            # (three render threads spinning on refused frames starve the reader of the GIL).
            self._stop.wait(0.002)
            return None
        captured_ns = self.pacer.wait(self._stop)
        if self.faults.disconnected(time.monotonic_ns()):
            raise DeviceError(f"{self.config.name}: simulated camera unplugged")
        index = self.frame_index
        self.frame_index += 1
        plan = self.faults
        f = plan.faults
        dropped, frozen, blurred, bright = (plan.draw(1, r)[0] for r in (
            f.drop_rate, f.frozen_rate, f.blur_rate, f.overexposed_rate))
        if frozen and self._last is not None:
            image = self._last
        else:
            image = self.render(index)
            if blurred:
                image = cv2.GaussianBlur(image, (0, 0), 6)
            if bright:
                image = cv2.add(image, np.full_like(image, 180))
        self._last = image
        delay = int(plan.arrival_delay_ns(1)[0])
        if delay and plan.faults.latency_ms + plan.faults.jitter_ms > 0:
            self._stop.wait(max(0.0, (captured_ns + delay - time.monotonic_ns()) / 1e9))
        if dropped:
            return None  # the frame index advanced: the gap shows in the sequence numbers
        return Capture(
            device_ns=plan.device_clock(np.array([captured_ns])),
            seq=np.array([index]),
            values={"image": image[None]},
            arrival_ns=np.array([max(time.monotonic_ns(), captured_ns + delay)]),
        )

    def render(self, index: int) -> np.ndarray:
        """Draw the scene as this camera sees it, with the frame counter on top."""
        qpos, gripper, obj, _ = self.world.snapshot()
        image = self._background.copy()
        h, w = image.shape[:2]
        scale = 0.9 * h
        base = np.array([w * (0.3 + 0.2 * self.view), h * 0.85])
        angles = np.cumsum(qpos[:3])
        links = np.array([0.3, 0.25, 0.15]) * scale
        steps = np.stack([np.cos(angles), -np.sin(angles)], axis=1) * links[:, None]
        points = np.vstack([base, base + np.cumsum(steps, axis=0)]).astype(np.int32)
        cv2.polylines(image, [points], False, (40, 40, 200), max(2, w // 80))
        opening = int((1.0 - gripper) * w / 40) + 3
        tip = tuple(points[-1])
        cv2.circle(image, tip, opening, (30, 160, 30), -1)
        ox, oz = base + np.array([obj[0], -obj[1]]) * scale
        s = max(4, w // 40)
        cv2.rectangle(image, (int(ox) - s, int(oz) - s), (int(ox) + s, int(oz) + s),
                      (0, 140, 255), -1)
        write_counter(image, index)
        return image


def _background(width: int, height: int, view: int) -> np.ndarray:
    """A textured scene (blur and exposure checks need real detail to work with)."""
    rng = np.random.default_rng(view)
    yy, xx = np.mgrid[0:height, 0:width]
    checker = (((yy // 24) + (xx // 24)) % 2) * 50 + 70
    noise = rng.integers(0, 40, (height, width))
    base = (checker + noise).astype(np.uint8)
    return np.dstack([base, (base * 0.9).astype(np.uint8), (base * 0.8).astype(np.uint8)])
