"""Per-process settings every station process applies before it touches a frame.

Memory: glibc hands buffers over a few hundred kB straight back to the kernel when they are
freed, and gets fresh pages for the next one. Every fresh page faults on first touch; in a VM
(firecracker, with free-page reporting) that makes copying into a new 1 MB frame buffer ~5x
slower than into one reused from the heap (1.3 vs 7 GB/s measured on the 2-core CI machine).
A pipeline that moves tens of MB of frames per second allocates such buffers all the time, so
every station process (the CLI and each Ray actor) asks glibc to keep what it frees.

Threads: Collector runs frames in parallel (the computation pool), never one frame on several
cores; OpenCV's own thread pool only oversubscribes them. On the 2-core CI machine the bare
render-encode-write loop ran at 497 frames/s with OpenCV's threads and 550 without.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling on 64-bit: buffers up to this come from the heap
TOP_PAD = 64 * 2**20  # the heap grows in steps this large
TRIM_THRESHOLD = 2**62  # never give free heap memory back: it is reused by the next batch

_done = False


def tune_process() -> None:
    """Apply both settings to this process (idempotent)."""
    import cv2

    cv2.setNumThreads(1)
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for this process (once); False where there is no glibc."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _done = all(mallopt(param, min(value, 2**31 - 1)) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TOP_PAD, TOP_PAD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    return _done
