"""Progress bars of the long commands (export, recover, validate of a folder), on stderr.

On a terminal the bar redraws in place. In a log (stderr not a terminal) each update is its own
line, at most one every few seconds, so a long run leaves a readable trail, not one long line of
carriage returns.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

LOG_INTERVAL_S = 5.0  # the longest a log goes without a progress line


def progress(total: float, what: str, unit: str = "file", in_bytes: bool = False) -> tqdm:
    """A bar over `total` units of work; `in_bytes` shows sizes as kB, MB, GB."""
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=what, unit="B" if in_bytes else unit, unit_scale=in_bytes,
                unit_divisor=1000, file=sys.stderr if tty else _LogLines(sys.stderr),
                dynamic_ncols=tty, ncols=None if tty else 100, leave=True,
                mininterval=0.2 if tty else LOG_INTERVAL_S, ascii=not tty)


def say(line: str) -> None:
    """A result line on stdout that does not tear a bar drawn on stderr."""
    tqdm.write(line, file=sys.stdout)


class _LogLines:
    """tqdm's in-place redraws as whole lines, each once."""

    def __init__(self, stream: TextIO):
        self.stream, self.last = stream, ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.last = line

    def flush(self) -> None:
        self.stream.flush()
