"""Free space on the disk that episodes go to: the one check both the writer and the station
loop use."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
from pathlib import Path
from typing import Any

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


FALLOC_FL_KEEP_SIZE = 1  # linux/falloc.h: allocate blocks past the end, the size unchanged
_fallocate: Any
try:
    _fallocate = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).fallocate
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
except (AttributeError, OSError, TypeError):  # not Linux: no fallocate
    _fallocate = None


def reserve_past_end(fd: int, nbytes: int) -> bool:
    """Hold `nbytes` of disk past the end of the open file `fd` without changing its size, so
    the next writes that append to it cannot meet a full disk: another process filling the
    disk takes only what is not held. True: held; False: this file system cannot hold space
    (check free space instead). Raises `OSError` (ENOSPC) when the disk has not that much."""
    if _fallocate is None:
        return False
    if _fallocate(fd, FALLOC_FL_KEEP_SIZE, os.fstat(fd).st_size, nbytes) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


def release_past_end(fd: int) -> None:
    """Give back what `reserve_past_end` held past the end of `fd`: truncating a file to its
    own size frees its blocks beyond the end (ext4, xfs, tmpfs). A file kept with them holds
    disk it will never use: on the JPEG test station, as much again as its own size."""
    os.ftruncate(fd, os.fstat(fd).st_size)
