"""Episodes for the export and dataset tests, made from a real recording without the load of
the machine deciding what they hold.

`mixed_episode`: a format-1 recording (JPEG per tick) re-stored as format 2 with
- cam_left_wrist h264, one new frame on every tick (its ticks step through its frames from a
  keyframe: the LeRobot export remuxes it),
- cam_high h264 at 10 fps under the 30 Hz grid (three ticks show each frame: re-encoded),
- cam_right_wrist left JPEG (encoded once).
The frames are a pan over a real photograph (tests/video_episodes.py), each one different.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np

from schemas.layout import QUALITY, TIMESTAMPS
from tests.video_episodes import record_format1, to_video

STEPPED = "cam_left_wrist"  # one frame per tick
SLOW = "cam_high"  # 10 fps: frames repeat over ticks
JPEG = "cam_right_wrist"


def mixed_episode(folder: Path, name: str = "mixed.h5", duration_s: float = 2.0,
                  source: Path | None = None) -> tuple[Path, dict[str, np.ndarray]]:
    """(episode, each video camera's frames as encoded, RGB); `source` reuses a recording."""
    folder.mkdir(parents=True, exist_ok=True)
    src = source or record_format1(folder / "format1", duration_s)
    stepped = folder / f"{name}.stepped"
    shutil.copyfile(src, stepped)
    with h5py.File(stepped, "r+") as f:  # every tick chose a frame of its own, at its time
        f[f"{QUALITY}/{STEPPED}/capture_ns"][:] = f[TIMESTAMPS][:]
        f[f"{QUALITY}/{STEPPED}/missing"][:] = False
    out = folder / name
    originals = to_video(stepped, out, {STEPPED: "h264", SLOW: "h264"})
    stepped.unlink()
    return out, originals


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# quality flags set on the mixed sources at known ticks (a recording of clean frames raises
# none): each export must carry them, tick for tick
MARKED = {(SLOW, "blurred"): [2, 5], (JPEG, "overexposed"): [1], (STEPPED, "frozen"): [4]}


def mixed_sources(folder: Path, duration_s: float, n: int = 2) -> list[Path]:
    """`n` mixed episodes made from one real format-1 recording of `duration_s`, with the
    camera flags of `MARKED` raised."""
    source = record_format1(folder / "format1", duration_s)
    out = [mixed_episode(folder, f"mixed{i}.h5", source=source)[0] for i in range(n)]
    for path in out:
        with h5py.File(path, "r+") as f:
            for (camera, check), ticks in MARKED.items():
                f[f"{QUALITY}/{camera}/{check}"][ticks] = True
    return out
