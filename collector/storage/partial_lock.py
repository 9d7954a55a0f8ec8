"""Who holds a partial file's lock, and whether that is a live recorder or what is left of one.

The writer holds a shared `flock` on its partial for as long as it writes it (`EpisodeWriter`);
the kernel drops it when the process dies. With the Ray engine the writer is a Ray worker: after a
SIGKILL of `collector record` that worker lives on for a few seconds (until its raylet, or the
station's watchdog, ends it), still holding the lock. Its process tree then no longer reaches
anything but Ray's own processes: that is what tells an orphan from a live recorder here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

import psutil

ORPHAN_WAIT_S = 10.0  # how long recover waits for an orphaned worker to let go of a partial
POLL_S = 0.05


def in_use(path: Path) -> bool:
    """A live writer (or reader) holds a lock on the file; a killed one holds nothing."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def lock_holders(path: Path) -> list[int]:
    """The processes /proc/locks names for locks on this file (empty where it cannot be read).
    A `flock` is shared by every process that inherited its descriptor; the one named is the one
    that took it, which is the writer."""
    st = os.stat(path)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            parts = line.split()
            # "1: FLOCK  ADVISORY  READ 1234 08:01:5678 0 EOF" (a "->" marks a waiter)
            if "->" in parts:
                continue
            if len(parts) >= 6 and parts[5] == key:
                with contextlib.suppress(ValueError):
                    out.append(int(parts[4]))
    return out


def is_ray_process(p: psutil.Process) -> bool:
    cmd = " ".join(p.cmdline())
    return cmd.startswith("ray::") or any(name in cmd for name in ("raylet", "gcs_server",
                                                                    "ray/_private",
                                                                    "default_worker.py"))


def orphaned(pid: int) -> bool:
    """The process is Ray's and every ancestor up to the init process is Ray's too, or dead:
    the station that started them is gone. Right after a SIGKILL the station may still be a
    zombie its own parent has not reaped yet (its Ray children not yet reparented): dead too."""
    try:
        p = psutil.Process(pid)
        if not is_ray_process(p):
            return False
    except psutil.NoSuchProcess:
        # gone, or a zombie (psutil cannot read its command line): a worker dying, no live
        # recorder; seen holding the lock for a moment as it exits. The next look at the lock
        # tells whether it is free.
        return True
    except psutil.Error:
        return False  # not ours to judge
    try:
        while True:
            parent = p.parent()  # None once the parent is gone
            if parent is None or parent.pid <= 1 or parent.status() == psutil.STATUS_ZOMBIE:
                return True
            if not is_ray_process(parent):
                return False
            p = parent
    except psutil.NoSuchProcess:
        return True  # an ancestor died while we looked: the station is gone
    except psutil.Error:
        return False


def held_by_orphans(path: Path) -> bool:
    holders = lock_holders(path)
    return bool(holders) and all(orphaned(pid) for pid in holders)


def wait_for_orphans(path: Path, wait_s: float = ORPHAN_WAIT_S) -> bool:
    """While only orphans hold the lock, wait (up to `wait_s`) for them to die. True when the
    file is free; False when a live recorder holds it, or the orphans outlived the wait."""
    deadline = time.monotonic() + wait_s
    while in_use(path):
        holders = lock_holders(path)
        # no holder named: the lock went between the two looks (or /proc/locks is unreadable):
        # look again, until the deadline
        live = bool(holders) and not all(orphaned(pid) for pid in holders)
        if live or time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True
