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
from enum import Enum
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


def _ending(p: psutil.Process) -> bool:
    """Dead, a zombie, or exiting: a process whose memory is already released has an empty
    command line (the kernel reads it from that memory) before it turns zombie. Under load
    that moment lasts long enough to be seen: an exiting Ray worker then looked like nobody's
    and its exiting raylet like a live parent that is not Ray's."""
    return p.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) or not p.cmdline()


def orphaned(pid: int) -> bool:
    """The process is Ray's and every ancestor up to the init process is Ray's too, or dead:
    the station that started them is gone. Right after a SIGKILL the station may still be a
    zombie its own parent has not reaped yet (its Ray children not yet reparented): dead too."""
    try:
        p = psutil.Process(pid)
        if _ending(p):
            return True  # a worker dying: the next look at the lock tells whether it is free
        if not is_ray_process(p):
            return False
    except psutil.NoSuchProcess:  # gone (a zombie too, where psutil cannot read it)
        return True
    except psutil.Error:
        return False  # not ours to judge
    try:
        while True:
            parent = p.parent()  # None once the parent is gone
            if parent is None or parent.pid <= 1 or _ending(parent):
                return True
            if not is_ray_process(parent):
                return False
            p = parent
    except psutil.NoSuchProcess:
        return True  # an ancestor died while we looked: the station is gone
    except psutil.Error:
        return False


def holders_text(path: Path) -> str:
    """Who holds the file's lock, for the operator: `pid 1234: collector record ...`."""
    out = []
    for pid in lock_holders(path):
        try:
            out.append(f"pid {pid}: {' '.join(psutil.Process(pid).cmdline())[:80]}")
        except psutil.Error:
            out.append(f"pid {pid}")
    return "; ".join(out) or "its holder is not named in /proc/locks"


class Lock(Enum):
    """What `wait_for_orphans` found."""

    FREE = "free"  # nobody holds it (any more)
    LIVE = "live"  # a live recorder holds it
    ORPHANS = "orphans"  # only a gone recorder's Ray workers, still there at the deadline


def wait_for_orphans(path: Path, wait_s: float = ORPHAN_WAIT_S) -> Lock:
    """While only orphans hold the lock, wait (up to `wait_s`) for them to die.

    A holder is judged live only when two looks in a row say so: the state of a process tree
    that is being torn down changes between two reads of /proc, and one wrong read must not
    make recover skip a file whose recorder is gone."""
    deadline = time.monotonic() + wait_s
    live_seen: set[int] = set()
    while in_use(path):
        holders = lock_holders(path)
        # no holder named: the lock went between the two looks (or /proc/locks is unreadable):
        # look again, until the deadline
        live = {pid for pid in holders if not orphaned(pid)}
        if live & live_seen:
            return Lock.LIVE
        live_seen = live
        if time.monotonic() >= deadline:
            return Lock.LIVE if live or not holders else Lock.ORPHANS
        time.sleep(POLL_S)
    return Lock.FREE
