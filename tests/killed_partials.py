"""A real partial file: `collector record` SIGKILLed once enough ticks are flushed (a helper for
the recover tests; waits on the file, never on a time)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import h5py

from tests.conftest import partials, start_recorder, wait_until


def flushed_ticks(path: Path) -> int:
    """Ticks a SWMR reader sees in a partial now (0 while it is being created)."""
    try:
        with h5py.File(path, "r", swmr=True, libver="latest") as f:
            return int(f["timestamps"].shape[0])
    except (OSError, KeyError):
        return 0


def wait_for_ticks(proc: subprocess.Popen, out: Path, ticks: int) -> Path:
    """Wait until the recorder's partial shows `ticks` flushed ticks; that partial."""
    seen: list[Path] = []

    def enough() -> bool:
        assert proc.poll() is None, proc.communicate()
        seen[:] = [p for p in partials(out) if flushed_ticks(p) >= ticks]
        return bool(seen)

    wait_until(enough, f"the recorder flushes {ticks} ticks")
    return seen[0]


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def sigkilled_partial(out: Path, ticks: int = 60) -> Path:
    """A real partial: a 60 s `collector record` SIGKILLed once `ticks` are flushed."""
    proc = start_recorder(out, 1, 60.0)
    try:
        return wait_for_ticks(proc, out, ticks)
    finally:
        kill(proc)
