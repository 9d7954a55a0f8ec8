"""The daemon's side of the camera previews (the capture's side: collector/previews.py):
the loop thread fills a `PreviewStore` from `Station.previews()` while a page is connected,
and the page's routes read it."""

from __future__ import annotations

import threading
import time

from collector.previews import PREVIEW_HZ, Preview


class PreviewStore:
    """The daemon side: the newest preview of each camera, and whether a page wants them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Preview] = {}
        self._watchers = 0
        self._collected_s = 0.0

    def watch(self, delta: int) -> None:
        """A page connected (+1) or left (-1)."""
        with self._lock:
            self._watchers = max(self._watchers + delta, 0)

    def due(self, now_s: float) -> bool:
        """Whether the loop should collect previews now: a page is open, and it is time."""
        return self._watchers > 0 and now_s - self._collected_s >= 1 / PREVIEW_HZ

    def update(self, fresh: dict[str, Preview], now_s: float) -> None:
        with self._lock:
            self._latest.update(fresh)
            self._collected_s = now_s

    def get(self, camera: str) -> Preview | None:
        with self._lock:
            return self._latest.get(camera)

    def seqs(self) -> dict[str, dict]:
        """Per camera: the newest preview's number and its age in seconds (for the stream)."""
        now = time.monotonic_ns()
        with self._lock:
            return {p.camera: {"seq": p.seq, "age_s": round((now - p.arrival_ns) / 1e9, 2),
                               "width": p.width, "height": p.height}
                    for p in self._latest.values()}
