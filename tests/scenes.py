"""Moving scenes for the video codecs, RGB uint8 (n, H, W, 3): the sim station's own render,
a wrist camera (panning and zooming over real photographs) and a fixed camera (a still
photograph with photographed objects moving across it), both with a sensor's noise. A codec's
bytes depend on how the picture moves, so no scene is a still image."""

from __future__ import annotations

import time

import cv2
import numpy as np

from drivers.sim.camera import SimCamera
from drivers.sim.world import SimWorld
from schemas.devices import SimCameraConfig
from tests.footage import photograph, sensor_noise

PHOTOGRAPHS = ("astronaut", "coffee", "rocket", "chelsea")


def sim_scene(n: int, width: int = 640, height: int = 480, fps: float = 30.0,
              view: int = 0) -> np.ndarray:
    """The sim station's camera `view` while the arm swings out and back, as the station
    renders it: the world stepped to each frame's time, then drawn."""
    world = SimWorld()
    camera = SimCamera(SimCameraConfig(name=f"c{view}", type="sim_camera", width=width,
                                       height=height, fps=fps), world, view=view)
    start = time.monotonic_ns()  # the world starts its clock now, as a station does
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        if i % 45 == 0:  # a new reach every 1.5 s at 30 fps
            swing = 0.8 if (i // 45) % 2 == 0 else -0.6
            world.command(np.array([swing, -0.4, 0.9, 0.0, 0.0, 0.0]), float((i // 45) % 2))
        world.step_to(np.array([start + int(i * 1e9 / fps)], np.int64))
        frames[i] = camera.render(i)[..., ::-1]  # the sim draws BGR, as OpenCV cameras give
    return frames


def _mosaic(height: int) -> np.ndarray:
    """The photographs side by side, each scaled to `height` rows: a wide scene to pan over."""
    tiles = []
    for name in PHOTOGRAPHS:
        image = photograph(name)[..., ::-1]
        width = round(image.shape[1] * height / image.shape[0])
        tiles.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC))
    return np.ascontiguousarray(np.hstack(tiles))


def wrist_scene(n: int, width: int = 640, height: int = 480, seed: int = 0,
                  noise: bool = True) -> np.ndarray:
    """A camera moving over real photographs: a steady pan (about 8 px a frame at 640 wide)
    with a slow zoom and a vertical bob, and a real sensor's noise on every frame."""
    canvas = _mosaic(int(height * 1.5))
    ch_max, cw_total = canvas.shape[:2]
    rng = np.random.default_rng(seed)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        t = i / 150  # the motion's phase: one cycle per 5 s at 30 fps
        zoom = 1.0 + 0.4 * (0.5 + 0.5 * np.sin(2 * np.pi * t))  # window 1.0x .. 1.4x the frame
        ch, cw = int(height * zoom), int(width * zoom)
        x = min(int(i * width / 80), cw_total - cw)
        y = int((ch_max - ch) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)))
        window = canvas[y:y + ch, x:x + cw]
        frame = cv2.resize(window, (width, height), interpolation=cv2.INTER_AREA)
        frames[i] = sensor_noise(frame, rng) if noise else frame
    return frames


def _cutout(name: str, width: int, height: int) -> np.ndarray:
    """A photograph scaled to cover width x height, centre-cropped: a solid object's texture."""
    image = photograph(name)[..., ::-1]
    scale = max(width / image.shape[1], height / image.shape[0])
    size = (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    y, x = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return np.ascontiguousarray(image[y:y + height, x:x + width])


def fixed_scene(n: int, width: int = 640, height: int = 480, seed: int = 0,
                noise: bool = True) -> np.ndarray:
    """A fixed camera over a still photograph (coffee on a table), as a station's overhead
    camera sees its workspace: an "arm" (a band cut from one photograph) reaches in from the
    top and sweeps across while holding an object (a patch of another), up to about 8 px a
    frame at 640 wide, and a real sensor's noise on every frame."""
    background = _cutout("coffee", width, height)
    arm_w, arm_h = width // 8, height * 5 // 8
    arm = _cutout("rocket", arm_w, arm_h)
    held = _cutout("chelsea", width // 5, width // 5)
    rng = np.random.default_rng(seed)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        t = i / 150  # one sweep out and back per 5 s at 30 fps
        x = int((width - held.shape[1]) * (0.5 + 0.45 * np.sin(2 * np.pi * t)))
        reach = int(arm_h * (0.75 + 0.25 * np.sin(2 * np.pi * 0.6 * t)))
        frame = background.copy()
        ax = x + (held.shape[1] - arm_w) // 2
        frame[:reach, ax:ax + arm_w] = arm[arm_h - reach:]
        frame[reach:reach + held.shape[0], x:x + held.shape[1]] = held[:height - reach]
        frames[i] = sensor_noise(frame, rng) if noise else frame
    return frames
