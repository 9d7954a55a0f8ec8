"""What an export will write, estimated from the sources' shapes before anything is read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py

from collector.storage.layout import ACTIONS, IMAGES, OBSERVATIONS, QUALITY, TIMESTAMPS
from collector.storage.videos import video_length
from schemas.layout import VIDEOS

FORMATS = ("robomimic", "lerobot", "aloha")
FLOAT_BYTES = 4  # robomimic and LeRobot write every signal as float32
PER_TICK_BYTES = 4 + 8  # robomimic's rewards (float32) and dones (int64)
LEROBOT_INDEX_BYTES = 4 * 8 + 4  # frame, episode, global and task index (int64), timestamp


@dataclass(frozen=True)
class Estimate:
    samples: int
    size: int  # bytes


def estimate(path: Path, fmt: str, images: bool = True) -> Estimate:
    """Ticks and bytes one episode adds: decoded frames (robomimic, ALOHA) or the video bytes
    as stored (LeRobot: remuxed packets cost what they cost; an encode from JPEG is counted at
    the JPEG's size), signals as float32 (ALOHA: float64), plus the per-tick marks."""
    try:
        with h5py.File(path, "r") as f:
            n = int(f[TIMESTAMPS].shape[0])
            size = n * (PER_TICK_BYTES if fmt == "robomimic" else 0)
            if fmt == "lerobot":
                size += n * LEROBOT_INDEX_BYTES + _video_bytes(f)
            elif images and IMAGES in f:
                for ds in f[IMAGES].values():
                    size += n * int(ds.attrs["height"]) * int(ds.attrs["width"]) * 3
            width = FLOAT_BYTES * (2 if fmt == "aloha" else 1)
            for root in (OBSERVATIONS, ACTIONS):
                for stream in f[root].values() if root in f else []:
                    if isinstance(stream, h5py.Group) and stream.name != f"/{IMAGES}":
                        size += sum(n * _width(ds) * width for ds in stream.values()
                                    if isinstance(ds, h5py.Dataset))
            if QUALITY in f:
                for marks in f[QUALITY].values():
                    size += sum(n * ds.dtype.itemsize for ds in marks.values()
                                if fmt != "robomimic" or ds.dtype.kind == "b")
            return Estimate(n, size)
    except (OSError, KeyError):
        return Estimate(0, 0)  # the exporter names the unreadable file itself


def _video_bytes(f: h5py.File) -> int:
    size = 0
    if VIDEOS in f:
        for group in f[VIDEOS].values():
            packets = group["packets"]
            n = video_length(group)
            for start in range(0, n, 256):
                size += sum(len(p) for p in packets[start:start + 256])
    if IMAGES in f:
        for ds in f[IMAGES].values():
            if ds.dtype.kind == "O":  # JPEG/PNG, one image per tick
                for start in range(0, ds.shape[0], 256):
                    size += sum(len(p) for p in ds[start:start + 256])
            elif ds.ndim > 1:  # raw frames
                size += ds.size
    return size


def _width(ds: h5py.Dataset) -> int:
    width = 1
    for dim in ds.shape[1:]:
        width *= dim
    return width
