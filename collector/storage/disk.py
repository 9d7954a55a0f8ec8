"""Free space on the disk that episodes go to: the one check both the writer and the station
loop use."""

from __future__ import annotations

import shutil
from pathlib import Path

from collector.errors import DiskFullError


def free_gb(path: Path) -> float:
    """Free space on the file system holding `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free / 1e9


def disk_low(path: Path, min_free_gb: float) -> bool:
    return free_gb(path) < min_free_gb


def check_free_space(path: Path, min_free_gb: float) -> None:
    """Raise `DiskFullError` when the disk holding `path` has less than `min_free_gb` free:
    called between episodes, so every committed episode is complete."""
    free = free_gb(path)
    if free < min_free_gb:
        raise DiskFullError(
            f"free space under {path} is {free:.2f} GB, below "
            f"storage.min_free_gb={min_free_gb:g}; stopped collecting "
            f"(every committed episode is complete): free some space and start again")
