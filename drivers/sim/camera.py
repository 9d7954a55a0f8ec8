"""A simulated camera: renders the simulated arm and object, stamps a readable frame counter."""

from __future__ import annotations

import time
from typing import cast

import cv2
import numpy as np

from core.errors import DeviceError
from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from drivers.sim.faults import FaultPlan
from drivers.sim.world import Pacer, SimWorld
from schemas.devices import Faults, SimCameraConfig

COUNTER_BITS = 24
COUNTER_CELL = 16  # pixels per bit cell: large enough to survive JPEG
IMAGE_FAULTS = ("dropped", "frozen", "blurred", "overexposed")
BLUR_KERNEL = 21  # pixels: a frame that lost focus. A box filter: a Gaussian this wide takes
# ~10 ms, which would make every blurred frame arrive late
OVEREXPOSE_GAIN = 180  # gray levels added: most of the frame clips to white
DRAW_BLOCK = 1024  # frames whose fault draws are made at once


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a counter in, well-spread 64 bits out (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return cast(np.ndarray, x ^ (x >> np.uint64(31)))  # numpy types the uint64 xor as Any


def fault_draws(faults: Faults, view: int, index: np.ndarray) -> dict[str, np.ndarray]:
    """Which image faults a camera draws for frames `index`: a pure function of the seed, the
    camera's view number (its place among the sim cameras of the station) and the frame index,
    so tests reproduce the simulator's ground truth from an episode's stored config alone."""
    index = np.atleast_1d(np.asarray(index, np.int64)).astype(np.uint64)
    rates = (faults.drop_rate, faults.frozen_rate, faults.blur_rate, faults.overexposed_rate)
    out = {}
    for kind, (name, rate) in enumerate(zip(IMAGE_FAULTS, rates, strict=True)):
        key = _mix(np.array([(faults.seed * 1_000_003 + view) * 8 + kind + 1], np.uint64))
        bits = _mix(index * np.uint64(0x9E3779B97F4A7C15) + key)
        out[name] = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53 < rate
    return out


def injected_faults(faults: Faults, view: int, frames: int) -> dict[str, np.ndarray]:
    """Ground truth for frames 0..frames-1 since the camera opened: what each frame shows.

    - dropped: never delivered (its index is missing from the stream's sequence numbers);
    - frozen: delivered as an exact copy of the last delivered frame (counter included);
    - blurred / overexposed: what the delivered image shows; a frozen frame shows its source's.
    """
    drawn = fault_draws(faults, view, np.arange(frames))
    delivered = ~drawn["dropped"]
    seen_before = np.concatenate([[False], np.cumsum(delivered)[:-1] > 0])
    frozen = drawn["frozen"] & delivered & seen_before
    rendered = np.arange(frames)
    own = delivered & ~frozen
    source = np.maximum.accumulate(np.where(own, rendered, -1))  # last own frame delivered
    source = np.where(frozen, source, rendered)
    return {
        "dropped": drawn["dropped"],
        "frozen": frozen,
        "blurred": delivered & drawn["blurred"][source],
        "overexposed": delivered & drawn["overexposed"][source],
        "source": source,
    }


def counter_layout(width: int, height: int) -> tuple[int, int, int]:
    """Cell width, cell height and number of bits of the counter a frame this size carries.

    Full 16 px cells (they survive JPEG) where the frame is wide enough; narrower cells in a
    narrower frame; a frame under 24 px wide carries only the counter's low bits, so what is
    read back there is the frame index modulo 2**bits.
    """
    cell = max(1, min(COUNTER_CELL, width // COUNTER_BITS))
    return cell, min(cell, height), min(COUNTER_BITS, width // cell)


def write_counter(image: np.ndarray, value: int) -> None:
    """Stamp `value` as a row of black/white cells along the top edge."""
    cell, rows, bits = counter_layout(image.shape[1], image.shape[0])
    row = np.repeat(((value >> np.arange(bits)) & 1).astype(np.uint8) * 255, cell)
    image[:rows, : row.shape[0]] = row[None, :, None] if image.ndim == 3 else row[None, :]


def read_counter(image: np.ndarray) -> int:
    """The frame counter a sim camera stamped, read back from an (even lossy) image."""
    cell, rows, bits = counter_layout(image.shape[1], image.shape[0])
    # the centre of each cell: JPEG smears its edges into the neighbours
    cells = image[rows // 8 : rows - rows // 8, : bits * cell].astype(np.float32)
    centers = cells.reshape(cells.shape[0], bits, cell, -1)[:, :, cell // 4 : cell - cell // 4]
    on = centers.mean(axis=(0, 2, 3)) > 127
    return int((on.astype(np.int64) << np.arange(bits)).sum())


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
        self._delivered: np.ndarray | None = None
        self._draws: dict[str, np.ndarray] = {}
        self._draws_block = -1

    def _connect(self) -> None:
        now = time.monotonic_ns()
        if self.faults.opened_ns is None:
            self.faults.opened_ns = now
        if self.faults.disconnected(now):
            raise DeviceError(f"{self.config.name}: simulated camera unplugged")
        self.pacer.next_ns = max(self.pacer.next_ns, now)

    def _capture(self) -> CapturedSamples | None:
        if not self.pacer.realtime and self._ring.full():
            # Max mode: flat out, but a frame the full ring would refuse is not worth rendering
            # (three render threads spinning on refused frames starve the reader of the GIL).
            self._stop.wait(0.002)
            return None
        captured_ns = self.pacer.wait(self._stop)
        if self.faults.disconnected(time.monotonic_ns()):
            raise DeviceError(f"{self.config.name}: simulated camera unplugged")
        index = self.frame_index
        self.frame_index += 1
        # The frame is drawn straight into the ring's next slot; a full ring refuses it before
        # it is drawn (as a real driver skips it), counted as overflow all the same.
        slot = self._reserve(index)
        if slot is None:
            return None
        image = slot["image"]
        plan = self.faults
        drawn = self._drawn(index)
        if drawn["frozen"] and self._delivered is not None:
            # a stuck camera repeats, exactly, the frame the host got (still in its slot: the
            # ring overwrites a slot only after newer frames were delivered)
            np.copyto(image, self._delivered)
        else:
            self.render(index, out=image)
            if drawn["blurred"]:
                cv2.blur(image, (BLUR_KERNEL, BLUR_KERNEL), dst=image)
            if drawn["overexposed"]:
                cv2.add(image, np.full_like(image, OVEREXPOSE_GAIN), dst=image)
        delay = int(plan.arrival_delay_ns(1)[0])
        if delay and plan.faults.latency_ms + plan.faults.jitter_ms > 0:
            self._stop.wait(max(0.0, (captured_ns + delay - time.monotonic_ns()) / 1e9))
        if drawn["dropped"]:
            return None  # the frame index advanced: the gap shows in the sequence numbers
        self._delivered = image
        return CapturedSamples(
            device_ns=plan.device_clock(np.array([captured_ns])),
            seq=np.array([index]),
            values={"image": image[None]},
            arrival_ns=np.array([max(time.monotonic_ns(), captured_ns + delay)]),
        )

    def _drawn(self, index: int) -> dict[str, bool]:
        """The faults drawn for frame `index`, drawn for DRAW_BLOCK frames at a time (one
        vectorized draw costs what a single one does)."""
        block = index // DRAW_BLOCK
        if self._draws_block != block:
            first = block * DRAW_BLOCK
            self._draws = fault_draws(self.faults.faults, self.view,
                                      np.arange(first, first + DRAW_BLOCK))
            self._draws_block = block
        row = index - block * DRAW_BLOCK
        return {k: bool(v[row]) for k, v in self._draws.items()}

    def render(self, index: int, out: np.ndarray | None = None) -> np.ndarray:
        """Draw the scene as this camera sees it, with the frame counter on top; into `out`
        (a ring slot, a row of a batch) when given."""
        qpos, gripper, obj, _ = self.world.snapshot()
        if out is None:
            image = self._background.copy()
        else:
            image = out
            np.copyto(image, self._background)
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
        return cast(np.ndarray, image)  # cv2 is untyped: its drawing calls make `image` Any


def _background(width: int, height: int, view: int) -> np.ndarray:
    """A textured scene (blur and exposure checks need real detail to work with)."""
    rng = np.random.default_rng(view)
    yy, xx = np.mgrid[0:height, 0:width]
    checker = (((yy // 24) + (xx // 24)) % 2) * 50 + 70
    noise = rng.integers(0, 40, (height, width))
    base = (checker + noise).astype(np.uint8)
    return np.dstack([base, (base * 0.9).astype(np.uint8), (base * 0.8).astype(np.uint8)])
