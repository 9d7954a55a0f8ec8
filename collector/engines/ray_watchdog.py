"""Ends a local Ray's processes when the station that started them dies without a word.

Run as a script, not imported: `python ray_watchdog.py <station pid>`, its stdin a pipe from
the station. Ray ends most of its processes itself when the station dies, but after a
SIGKILL its two agents (dashboard and runtime-env, ~85 MB each) first try to tell the dead
cluster why, and wait a minute for that. This keeps a list of the station's child processes
and, when the pipe closes (the station is gone, however it ended), ends those still running.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys

import psutil

REFRESH_S = 1.0  # processes started since are picked up this often
GRACE_S = 2.0  # between SIGTERM and SIGKILL


def ray_processes(station: psutil.Process) -> dict[int, psutil.Process]:
    """The station's descendants that are Ray's (raylet, GCS, agents, workers: `ray::...`)."""
    out = {}
    with contextlib.suppress(psutil.Error):
        for p in station.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "ray" in " ".join(p.cmdline()):
                    out[p.pid] = p
    return out


def main(station_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the station, not for us
    station = psutil.Process(station_pid)
    known: dict[int, psutil.Process] = {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], REFRESH_S)
        # stdin is a pipe here, whose buffer is a BufferedReader (typeshed says BinaryIO)
        if ready and not sys.stdin.buffer.read1(4096):  # type: ignore[union-attr]
            break  # end of file: the station is gone
        known |= ray_processes(station)
        known.pop(os.getpid(), None)  # a child of the station too
    # psutil.Process remembers each one's start time: a reused pid is never signalled
    alive = [p for p in known.values() if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(alive, timeout=GRACE_S)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()


if __name__ == "__main__":
    main(int(sys.argv[1]))
