"""Where each numbered frame of a video camera lies in its /videos/<camera> datasets.

Perception numbers a camera's frames 0, 1, ... per episode and the grid carries those numbers;
the packets are stored in order, one row each. Normally number and row are the same. They part
when packets never arrive (an encoder that died with its batch's frames) or when numbering
starts again (a perception actor restarted mid-episode numbers from 0): the stored rows stay
dense, every one a packet that decodes, and this map says which row each number landed in.
"""

from __future__ import annotations

import numpy as np

from collector.batch import CameraPackets
from schemas.layout import NO_FRAME


class FrameRows:
    """Frame numbers -> rows for one camera, as runs of consecutive numbers stored in a row.

    Only the current numbering is kept: batches reach execution in order, so no tick of an
    older numbering is looked up once a newer one began."""

    def __init__(self) -> None:
        self.rows = 0  # packets stored this episode
        self._numbers: list[int] = []  # per run: its first frame number ...
        self._starts: list[int] = []  # ... its first row ...
        self._lengths: list[int] = []  # ... and how many
        self._last_shown = NO_FRAME  # the row the latest tick looked up showed

    def stored(self, packets: CameraPackets) -> None:
        """`packets` are appended after the rows stored so far."""
        n = len(packets)
        if not n:
            return
        first = packets.frames.first
        if self._numbers and first < self._numbers[-1] + self._lengths[-1]:
            self._numbers, self._starts, self._lengths = [], [], []  # numbering began again
        if self._numbers and first == self._numbers[-1] + self._lengths[-1]:
            self._lengths[-1] += n
        else:
            self._numbers.append(first)
            self._starts.append(self.rows)
            self._lengths.append(n)
        self.rows += n

    def rows_of(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row per frame number, True where that frame was never stored). A frame never
        stored shows the last stored frame before it (NO_FRAME: none), as a missing tick does.

        An unnumbered frame (NO_FRAME: perception held a missing tick from a sample outside
        the episode window, such as the one past the end it keeps to settle the last ticks)
        is never stored either: once a frame was shown, its tick shows the last one too."""
        numbers = np.asarray(numbers, np.int64)
        rows, lost = self._lookup(numbers)
        unnumbered = rows == NO_FRAME
        shown = np.maximum.accumulate(np.concatenate([[self._last_shown], rows]))[:-1]
        rows = np.where(unnumbered, shown, rows)
        lost |= unnumbered & (rows != NO_FRAME)
        if len(rows):
            self._last_shown = max(self._last_shown, int(rows.max()))
        return rows, lost

    def _lookup(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self._numbers:
            return np.full(numbers.shape, NO_FRAME, np.int64), numbers >= 0
        first = np.asarray(self._numbers, np.int64)
        start = np.asarray(self._starts, np.int64)
        length = np.asarray(self._lengths, np.int64)
        run = np.searchsorted(first, numbers, side="right") - 1
        inside = run >= 0
        at = np.clip(run, 0, None)
        offset = numbers - first[at]
        found = inside & (offset < length[at])
        rows = np.where(found, start[at] + offset,
                        np.where(inside, start[at] + length[at] - 1, NO_FRAME))
        # a number before the current numbering's first run (or NO_FRAME itself)
        rows = np.where(numbers < 0, NO_FRAME, rows)
        return rows.astype(np.int64), (numbers >= 0) & ~found
