"""A thread's Python name, shown to the OS too, so `top -H`, `ps -L`, py-spy and the bench's
monitor see which thread of a process is which (CPython 3.11 leaves every OS thread named after
the process). Linux keeps the first 15 bytes; elsewhere this does nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading

# Threads that stand in for hardware (drivers/sim: a serial device's firmware) start so: the
# bench counts their CPU apart from the station's, since a real device's does not run on the host
SIMULATED_THREAD_PREFIX = "sim-"
_PR_SET_NAME = 15  # prctl(2): name the calling thread
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" \
    else None


def show_thread_name() -> None:
    """Give the calling thread's Python name to the OS (call it first thing in the thread)."""
    if _libc is None:
        return
    name = threading.current_thread().name.encode("utf-8", "replace")[:15]
    _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
