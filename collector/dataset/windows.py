"""Windows of ticks around a sample: which rows an offset reaches, and which fall off an edge.

Like LeRobot's `delta_timestamps`, but in ticks: offset -1 is the tick before, 0 the sample's
own, 49 the 49th after. A row past either end of the episode repeats the edge row and is marked
as padding (`<key>_is_pad`), so a chunked policy masks it out of its loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    offsets: np.ndarray  # int64 tick offsets, in the order the sample stacks them

    @classmethod
    def of(cls, offsets: Sequence[int] | range) -> Window:
        values = np.asarray(list(offsets), np.int64)
        if values.ndim != 1 or not values.size:
            raise ValueError(f"offsets {list(offsets)!r}: give at least one tick offset")
        return cls(values)

    def rows(self, tick: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, is_pad): the episode rows for a sample at `tick` of an episode of `length`."""
        wanted = tick + self.offsets
        rows = np.clip(wanted, 0, length - 1)
        return rows, rows != wanted

    def __len__(self) -> int:
        return int(self.offsets.size)
