"""Progress bars of the long commands (export, recover, validate of a folder), on stderr.

On a terminal the bar redraws often; in a log (stderr not a terminal) it is written at most every
few seconds, so a long run leaves a readable trail instead of thousands of updates.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL_S = 5.0  # the longest a log goes without a progress line


def progress(total: float, what: str, unit: str = "file", in_bytes: bool = False) -> tqdm:
    """A bar over `total` units of work; `in_bytes` shows sizes as kB, MB, GB."""
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=what, unit="B" if in_bytes else unit, unit_scale=in_bytes,
                unit_divisor=1000, file=sys.stderr, dynamic_ncols=tty, leave=True,
                mininterval=0.2 if tty else LOG_INTERVAL_S, ascii=not tty)


def say(line: str) -> None:
    """A result line on stdout that does not tear a bar drawn on stderr."""
    tqdm.write(line, file=sys.stdout)
