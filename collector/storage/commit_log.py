"""`CommitLog`: when each grid row reached disk, kept by the writer for `collector bench`'s
capture-to-disk latency."""

from __future__ import annotations

import numpy as np

COMMIT_LOG_ROWS = 1 << 17  # capture-to-disk latencies kept per episode (for `collector bench`)


class CommitLog:
    """When each grid row with a sample reached disk: capture time vs flush time, bounded.

    Rows wait in `_pending` only until the next flush (one flush interval); past the capacity
    further rows are counted in `lost` but not kept.
    """

    def __init__(self, capacity: int = COMMIT_LOG_ROWS):
        self.capture_ns = np.zeros(capacity, np.int64)
        self.flushed_ns = np.zeros(capacity, np.int64)
        self.camera = np.zeros(capacity, bool)
        self.size = 0
        self.lost = 0
        self._pending: list[tuple[np.ndarray, bool]] = []

    def appended(self, capture_ns: np.ndarray, camera: bool) -> None:
        self._pending.append((capture_ns, camera))

    def flushed(self, now_ns: int) -> None:
        for capture, camera in self._pending:
            take = min(len(capture), len(self.capture_ns) - self.size)
            end = self.size + take
            self.capture_ns[self.size:end] = capture[:take]
            self.flushed_ns[self.size:end] = now_ns
            self.camera[self.size:end] = camera
            self.size = end
            self.lost += len(capture) - take
        self._pending.clear()

    def trimmed(self) -> CommitLog:
        """A copy holding only the used rows (what crosses process boundaries)."""
        out = CommitLog(0)
        out.capture_ns, out.flushed_ns = self.capture_ns[:self.size], self.flushed_ns[:self.size]
        out.camera, out.size, out.lost = self.camera[:self.size], self.size, self.lost
        return out
