"""Recover each partial in a child process, so that no file can stop `collector recover`.

HDF5 can loop without end on a damaged file (a truncated superblock, a SWMR index cut short) and
can crash the process on one. So partials are opened in a worker process that reports progress
between bounded steps; a worker silent for `stall_s` is killed, its file goes to rejected/ with
"timed out", and a fresh worker takes the next file. Whatever a killed worker left (the
`.recovering` copy, the `.unlocked` copy) is removed here, where it is known by name.

Run as `python -m collector.storage.recover_worker`: one partial's path per line on stdin, one
JSON object per line on stdout (`{"beat": 1}` while working, then the outcome).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from collector.errors import CollectorError, DiskFullError, EpisodeFileError
from collector.storage.recover import (
    NothingFlushed,
    Recovery,
    check_space,
    recover_partial,
    staging_path,
    unlocked_path,
)

STALL_S = 60.0  # a worker silent this long is stuck (HDF5 on a damaged file), not slow
BEAT_EVERY_S = 0.5  # the worker's progress reports, at most this often
START_S = 300.0  # a worker's start (imports) on a loaded machine; it then says it is ready
ERRORS: dict[str, type[CollectorError]] = {"nothing": NothingFlushed, "file": EpisodeFileError,
                                           "disk": DiskFullError}


class TimedOut(EpisodeFileError):
    """Reading the partial made no progress for the time limit: the worker was killed."""


class WorkerBug(Exception):
    """The worker raised something unexpected: a bug, with the worker's traceback."""


class RecoverWorker:
    """Recovers partials one at a time in a child process, each within `stall_s` of silence."""

    def __init__(self, stall_s: float = STALL_S):
        self.stall_s = stall_s
        self._proc: subprocess.Popen[str] | None = None
        self._lines: Lines | None = None
        # HDF5 prints to stderr as it fails (and h5py's object cleanup after a failed write);
        # the user gets one line per file instead, and a crash's last words in its message
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())

    def __enter__(self) -> RecoverWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recover(self, partial: Path) -> Recovery:
        """`recover_partial` in the worker: its result, or its error raised here."""
        partial = Path(partial)
        check_space(partial)  # here too: a full disk stops the run before a worker starts
        try:
            reply = self._ask(partial)
        except BaseException:
            self._kill()  # stuck, crashed, or we were interrupted: it must not write on
            staging_path(partial).unlink(missing_ok=True)
            unlocked_path(partial).unlink(missing_ok=True)
            raise
        if reply.get("error") == "disk":
            self._kill()  # its HDF5 cannot close the copy: its descriptors hold the space
        self._last_words()  # what HDF5 printed for this file: said in one line instead
        return _outcome(reply)

    def _ask(self, partial: Path) -> dict[str, Any]:
        """Hand the worker one partial and wait for its answer, each silence `stall_s` at most."""
        proc = self._start()
        assert proc.stdin is not None and self._lines is not None
        proc.stdin.write(str(partial) + "\n")
        proc.stdin.flush()
        while True:
            line = self._lines.next(self.stall_s)
            if line is None:
                raise TimedOut(f"{partial}: timed out after {self.stall_s:g} s without "
                               "progress (HDF5 stuck on a damaged file)")
            if line == "":
                raise self._died(partial)
            reply: dict[str, Any] = json.loads(line)
            if "beat" not in reply:
                return reply

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "collector.storage.recover_worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                # its own session: a Ctrl-C goes to the command, which then kills the worker
                bufsize=1, start_new_session=True)
            assert self._proc.stdout is not None
            self._lines = Lines(self._proc.stdout.fileno())
            if self._lines.next(START_S) != '{"ready": 1}':
                raise WorkerBug(f"the recover worker did not start within {START_S:g} s")
        return self._proc

    def _died(self, partial: Path) -> CollectorError:
        proc = self._proc
        code = proc.wait() if proc is not None else 0  # its output ended: it has exited
        try:
            check_space(partial)  # HDF5 can crash on a full disk: that is not the file's fault
        except DiskFullError as exc:
            return exc
        known = code < 0 and -code in signal.valid_signals()
        why = f"signal {signal.Signals(-code).name}" if known else f"exit {code}"
        return EpisodeFileError(f"{partial}: reading it crashed HDF5 ({why}{self._last_words()})")

    def _last_words(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        self._stderr.seek(0)
        self._stderr.truncate()
        return f": {lines[-1].strip()}" if lines else ""

    def _kill(self) -> int:
        proc, self._proc, self._lines = self._proc, None, None
        if proc is None:
            return 0
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        code = proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        return code

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # end of input: the worker exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stall_s)
        self._kill()
        self._stderr.close()


class Lines:
    """The worker's output, a line at a time, from its raw descriptor: a buffered text stream
    could hold a second line that `select` then never reports."""

    def __init__(self, fd: int):
        self.fd = fd
        self._buffer = b""
        self._ended = False

    def next(self, timeout_s: float) -> str | None:
        """The next line (without its newline); "" once the worker is gone; None when it said
        nothing for `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            if self._ended:
                return ""
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0.0))
            if not ready:
                return None
            data = os.read(self.fd, 65536)
            self._ended = not data
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


def _outcome(reply: dict[str, Any]) -> Recovery:
    if "recovered" in reply:
        r = reply["recovered"]
        return Recovery(**{**r, "partial": Path(r["partial"]),
                           "path": Path(r["path"]) if r["path"] else None})
    if reply["error"] == "bug":
        raise WorkerBug(reply["message"])
    raise ERRORS[reply["error"]](reply["message"])


# -- the worker ---------------------------------------------------------------------------------

def _serve() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command decides; it kills us if it must
    out = sys.stdout
    last = [0.0]

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    def beat() -> None:
        now = time.monotonic()
        if now - last[0] >= BEAT_EVERY_S:
            last[0] = now
            send({"beat": 1})

    send({"ready": 1})
    for line in sys.stdin:
        partial = Path(line.rstrip("\n"))
        try:
            r = recover_partial(partial, beat)
        except CollectorError as exc:
            kind = ("nothing" if isinstance(exc, NothingFlushed) else
                    "disk" if isinstance(exc, DiskFullError) else "file")
            send({"error": kind, "message": str(exc)})
            continue
        except Exception:
            send({"error": "bug", "message": traceback.format_exc()})
            continue
        send({"recovered": {k: str(v) if isinstance(v, Path) else v
                            for k, v in asdict(r).items()}})


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):  # the command was killed: nobody to tell
        _serve()
