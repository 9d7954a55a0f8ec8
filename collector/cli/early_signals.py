"""SIGTERM and SIGINT that arrive before a command has its own handlers: held, not fatal.

`collector run` and `record` promise exit 0 for a SIGTERM or SIGINT in any state, starting
included. Before they install their handlers, the process imports numpy, h5py, pydantic and the
command modules and reads the YAML: a second or more on a loaded host, in which the default
actions would end it with exit 143 (SIGTERM) or 130 (SIGINT). `hold` (the first thing
`collector` does) only notes such a signal; `run` and `record` then `hand_over` what arrived to
their own handler, as if it had come a moment later. Every other command gets the handlers from
before back with `release`, and a signal held for it is raised again, to end it as it would
have. Only the interpreter's own start (before any Collector code runs, milliseconds) is left to
the defaults: nothing is open then.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

HELD = (signal.SIGTERM, signal.SIGINT)
Handler = Callable[[int, FrameType | None], Any]

_arrived: list[int] = []  # at most a few: each is a signal someone sent while we started
_before: dict[int, Any] = {}  # the handlers `hold` replaced


def _note(signum: int, _frame: FrameType | None) -> None:
    _arrived.append(signum)


def hold() -> None:
    for signum in HELD:
        previous = signal.signal(signum, _note)
        if previous is not _note:
            _before[signum] = previous


def hand_over(handler: Handler) -> dict[int, Any]:
    """`handler` for the held signals from now on; it is given each one that arrived before.
    Returns the handlers from before `hold`, for the command to put back when it is done."""
    previous = {signum: signal.signal(signum, handler) for signum in HELD}
    originals: dict[int, Any] = {signum: _before.pop(signum, previous[signum]) for signum in HELD}
    while _arrived:
        handler(_arrived.pop(0), None)
    return originals


def release() -> None:
    """The handlers from before `hold` back; a signal that arrived meanwhile is raised again,
    to meet them."""
    for signum in HELD:
        if signum in _before:
            signal.signal(signum, _before.pop(signum))
    while _arrived:
        signal.raise_signal(_arrived.pop(0))
